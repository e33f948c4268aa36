// Checks of a container NIC the server's schema also makes (api/ct.go),
// and the server's field errors (nets[i].field) mapped back onto a NIC form.
import type { CTNet } from '../../api/types';

const cidr4 = /^(\d{1,3}\.){3}\d{1,3}\/\d{1,2}$/;
const ip4 = /^(\d{1,3}\.){3}\d{1,3}$/;

export function validateNic(n: CTNet): Record<string, string> {
  const e: Record<string, string> = {};
  if (!/^[a-z][a-z0-9_-]{0,14}$/.test(n.name)) e.name = 'a lower-case letter, then letters, digits, _ or -; at most 15 characters';
  if (n.bridge && !/^[A-Za-z0-9_.-]{1,15}$/.test(n.bridge)) e.bridge = 'at most 15 letters, digits, _ . -';
  if (n.ip && n.ip !== 'dhcp' && !cidr4.test(n.ip)) e.ip = 'dhcp or an IPv4 address with its prefix, e.g. 10.0.0.5/24';
  if (n.gw && !ip4.test(n.gw)) e.gw = 'an IPv4 address';
  if (n.hwaddr && !/^([0-9a-fA-F]{2}:){5}[0-9a-fA-F]{2}$/.test(n.hwaddr)) e.hwaddr = 'a MAC address like 02:00:00:00:00:01';
  if (n.tag !== undefined && (n.tag < 0 || n.tag > 4094 || !Number.isInteger(n.tag))) e.tag = '0 to 4094';
  return e;
}

/** Field errors of NIC i from the server's (nets[i].bridge or body.nets[i].bridge). */
export function nicErrors(fe: Record<string, string>, i: number): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, m] of Object.entries(fe)) {
    const r = /nets\[(\d+)\]\.?(\w*)$/.exec(k);
    if (r && Number(r[1]) === i) out[r[2] || '_'] = m;
    else if (/nets$/.test(k)) out._ = m;
  }
  return out;
}
