// The create-container wizard's form: defaults, the checks the server's
// schema also makes (api/ct.go CTCreate), the request, and which step shows
// a field (the server's field names included).
import type { CTCreate, CTNet } from '../../api/types';
import { validateNic } from './nic';

export interface CTForm {
  node: string;
  vmid: number | '';
  hostname: string;
  tags: string[];
  unprivileged: boolean;
  password: string;
  password2: string;
  sshKeys: string;
  ostemplate: string;
  rootStorage: string;
  rootSize: string;
  cores: number;
  cpulimit: number;
  memory: number;
  swap: number;
  withNet: boolean;
  net: CTNet;
  nameserver: string;
  searchdomain: string;
  start: boolean;
}

export const defaultCTForm: CTForm = {
  node: '', vmid: '', hostname: '', tags: [], unprivileged: true, password: '', password2: '', sshKeys: '',
  ostemplate: '', rootStorage: '', rootSize: '1G', cores: 1, cpulimit: 0, memory: 512, swap: 512,
  withNet: false, net: { name: 'eth0', bridge: '', ip: 'dhcp' }, nameserver: '', searchdomain: '', start: false,
};

export const ctSteps = ['General', 'Template', 'Root disk', 'CPU', 'Memory', 'Network', 'DNS', 'Confirm'] as const;

/** Which step shows a field. */
export function ctStepOf(field: string): number {
  const f = field.replace(/^body\./, '');
  if (/^(node|vmid|hostname|tags|unprivileged|password|ssh_public_keys|sshKeys)/.test(f)) return 0;
  if (/^ostemplate/.test(f)) return 1;
  if (/^(rootfs|root)/.test(f)) return 2;
  if (/^(cores|cpulimit|cpuunits)/.test(f)) return 3;
  if (/^(memory|swap)/.test(f)) return 4;
  if (/^(nets|net\.)/.test(f)) return 5;
  if (/^(nameserver|searchdomain)/.test(f)) return 6;
  return 7;
}

/** The server's field names onto the form's (rootfs.size → rootSize, nets[0].bridge → net.bridge). */
export function ctFormField(field: string): string {
  const f = field.replace(/^body\./, '');
  const nic = /^nets\[0\]\.?(\w*)$/.exec(f);
  if (nic) return nic[1] ? `net.${nic[1]}` : 'net.bridge';
  const m: Record<string, string> = {
    'rootfs.size': 'rootSize', 'rootfs.storage': 'rootStorage', rootfs: 'rootStorage', ssh_public_keys: 'sshKeys', nets: 'net.bridge',
  };
  return m[f] ?? f.replace(/\[\d+\]$/, '');
}

const hostRe = /^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;
const intIn = (v: number, lo: number, hi: number) => Number.isInteger(v) && v >= lo && v <= hi;

export function validateCT(f: CTForm): Record<string, string> {
  const e: Record<string, string> = {};
  if (f.vmid !== '' && !intIn(f.vmid, 100, 999999999)) e.vmid = 'an ID from 100 to 999999999';
  if (f.hostname && (f.hostname.length > 253 || !hostRe.test(f.hostname))) e.hostname = 'a host name: letters, digits and hyphens, dot-separated';
  if (f.password && f.password.length < 5) e.password = 'at least 5 characters';
  if (f.password !== f.password2) e.password2 = 'the passwords differ';
  const keys = sshKeys(f.sshKeys);
  if (keys.some((k) => !/^(ssh|ecdsa|sk)-[\w@.-]+ \S+/.test(k))) e.sshKeys = 'one public key a line, e.g. ssh-ed25519 AAAA… user@host';
  if (!f.ostemplate) e.ostemplate = 'choose a template';
  if (f.rootSize && !/^[0-9]+[KMGT]?$/.test(f.rootSize)) e.rootSize = 'a size like 512M or 8G';
  if (!intIn(f.cores, 1, 128)) e.cores = '1 to 128';
  if (!(f.cpulimit >= 0 && f.cpulimit <= 128)) e.cpulimit = '0 (no limit) to 128';
  if (!intIn(f.memory, 16, 4194304)) e.memory = 'at least 16 MiB';
  if (!intIn(f.swap, 0, 4194304)) e.swap = '0 or more MiB';
  if (f.withNet) for (const [k, m] of Object.entries(validateNic(f.net))) e[`net.${k}`] = m;
  const ns = nameservers(f.nameserver);
  if (ns.length > 3) e.nameserver = 'at most 3 servers';
  else if (ns.some((s) => !/^[0-9a-fA-F:.]+$/.test(s))) e.nameserver = 'IP addresses, separated by spaces or commas';
  if (f.searchdomain && !/^[A-Za-z0-9.-]+$/.test(f.searchdomain)) e.searchdomain = 'a domain name';
  return e;
}

const sshKeys = (s: string) => s.split('\n').map((x) => x.trim()).filter(Boolean);
const nameservers = (s: string) => s.split(/[\s,]+/).filter(Boolean);

export function toCTRequest(f: CTForm): CTCreate {
  const r: CTCreate = {
    node: f.node || undefined,
    ostemplate: f.ostemplate,
    hostname: f.hostname || undefined,
    tags: f.tags.length ? f.tags : undefined,
    unprivileged: f.unprivileged,
    cores: f.cores,
    cpulimit: f.cpulimit || undefined,
    memory: f.memory,
    swap: f.swap,
    rootfs: { storage: f.rootStorage || undefined, size: f.rootSize || undefined },
    start: f.start || undefined,
  };
  if (f.vmid !== '') r.vmid = f.vmid;
  if (f.password) r.password = f.password;
  const keys = sshKeys(f.sshKeys);
  if (keys.length) r.ssh_public_keys = keys;
  if (f.withNet) r.nets = [Object.fromEntries(Object.entries(f.net).filter(([, v]) => v !== '' && v !== undefined)) as CTNet];
  const ns = nameservers(f.nameserver);
  if (ns.length) r.nameserver = ns;
  if (f.searchdomain) r.searchdomain = f.searchdomain;
  return r;
}
