// Firewall rules in forms: the checks the server's schema makes
// (api/network.go FwRule), and a rule's one-line summary.
import type { FwRule } from '../../api/types';

const portRe = /^(\d{1,5}(:\d{1,5})?)(,\d{1,5}(:\d{1,5})?)*$/;

export const emptyRule: FwRule = { type: 'in', action: 'ACCEPT', enable: true };

export function validateRule(r: FwRule): Record<string, string> {
  const e: Record<string, string> = {};
  if ((r.dport || r.sport) && !['tcp', 'udp', 'sctp'].includes(r.proto ?? '')) e.proto = 'ports need tcp, udp or sctp';
  if (r.dport && !portRe.test(r.dport)) e.dport = 'a port, a range a:b, or a comma list';
  if (r.sport && !portRe.test(r.sport)) e.sport = 'a port, a range a:b, or a comma list';
  if (r.iface && !/^[A-Za-z0-9_.-]{1,15}$/.test(r.iface)) e.iface = 'an interface name (at most 15 characters)';
  return e;
}

/** "in ACCEPT tcp 22 from 10.0.0.0/8" */
export function ruleText(r: FwRule): string {
  if (r.group) return `${r.type} group ${r.group}`;
  const p: string[] = [r.type, r.action];
  if (r.proto) p.push(r.proto);
  if (r.dport) p.push(`port ${r.dport}`);
  if (r.source) p.push(`from ${r.source}`);
  if (r.dest) p.push(`to ${r.dest}`);
  if (r.iface) p.push(`on ${r.iface}`);
  return p.join(' ');
}
