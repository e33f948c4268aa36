// The create-VM wizard's form: its state, the request it sends, and the
// client-side checks, which mirror the server's schema (api/vm.go) so most
// mistakes show before the request; the server's field errors land on the
// same field names.
import type { VMCreate } from '../../api/types';

export interface CreateForm {
  node: string;
  vmid: number | '';
  name: string;
  tags: string[];
  iso: string; // volume ID or '' for none
  machine: 'q35' | 'pc';
  bios: 'seabios' | 'ovmf';
  vga: 'std' | 'virtio' | 'qxl' | 'serial0' | 'none';
  serial: boolean;
  diskStorage: string; // '' for no disk
  diskSize: string; // "8G"
  diskBus: 'virtio' | 'scsi' | 'sata' | 'ide';
  sockets: number;
  cores: number;
  cpu: string;
  memory: number;
  balloon: number;
  netBridge: string; // '' for no NIC
  netModel: 'virtio' | 'e1000';
  start: boolean;
}

export const defaultForm: CreateForm = {
  node: '', vmid: '', name: '', tags: [], iso: '', machine: 'q35', bios: 'seabios', vga: 'std', serial: true,
  diskStorage: '', diskSize: '8G', diskBus: 'virtio', sockets: 1, cores: 1, cpu: 'x86-64-v2', memory: 512, balloon: 0,
  netBridge: '', netModel: 'virtio', start: false,
};

export const steps = ['General', 'OS', 'System', 'Disks', 'CPU', 'Memory', 'Network', 'Confirm'] as const;

/** Which wizard step shows a field (server field names included). */
export function stepOf(field: string): number {
  const f = field.replace(/^body\./, '');
  if (/^(node|vmid|name|tags)/.test(f)) return 0;
  if (/^(cdroms|boot)/.test(f)) return 1;
  if (/^(machine|bios|vga|serial)/.test(f)) return 2;
  if (/^disks/.test(f)) return 3;
  if (/^(sockets|cores|cpu)/.test(f)) return 4;
  if (/^(memory|balloon)/.test(f)) return 5;
  if (/^nets/.test(f)) return 6;
  return 7;
}

/** Maps the server's field names onto the form's (disks[0].size → diskSize). */
export function formField(field: string): string {
  const f = field.replace(/^body\./, '');
  const m: Record<string, string> = {
    'disks[0].size': 'diskSize', 'disks[0].storage': 'diskStorage', 'disks[0].bus': 'diskBus', 'disks[0]': 'diskStorage', disks: 'diskStorage',
    'cdroms[0].volume': 'iso', 'cdroms[0]': 'iso', cdroms: 'iso', 'nets[0].bridge': 'netBridge', 'nets[0].model': 'netModel', 'nets[0]': 'netBridge', nets: 'netBridge',
  };
  return m[f] ?? f.replace(/\[\d+\]$/, '');
}

const nameRe = /^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$/;
const sizeRe = /^[0-9]+[KMGT]?$/;
const tagRe = /^[A-Za-z0-9][A-Za-z0-9_.+-]*$/;

function intIn(v: number, lo: number, hi: number): boolean {
  return Number.isInteger(v) && v >= lo && v <= hi;
}

export function validate(f: CreateForm): Record<string, string> {
  const e: Record<string, string> = {};
  if (f.vmid !== '' && !intIn(f.vmid, 100, 999999999)) e.vmid = 'between 100 and 999999999';
  if (f.name.length > 63) e.name = 'at most 63 characters';
  else if (f.name && !nameRe.test(f.name)) e.name = 'letters, digits, dots and hyphens; starts and ends with a letter or digit';
  const badTag = f.tags.find((t) => !tagRe.test(t) || t.length > 64);
  if (badTag) e.tags = `invalid tag "${badTag}"`;
  if (f.diskStorage) {
    if (!sizeRe.test(f.diskSize)) e.diskSize = 'a size like 8G, 512M or 1073741824';
    else if (/^0+[KMGT]?$/.test(f.diskSize)) e.diskSize = 'must be larger than 0';
  }
  if (!intIn(f.sockets, 1, 4)) e.sockets = 'between 1 and 4';
  if (!intIn(f.cores, 1, 128)) e.cores = 'between 1 and 128';
  if (!intIn(f.memory, 16, 4194304)) e.memory = 'between 16 and 4194304 MiB';
  if (!intIn(f.balloon, 0, 4194304)) e.balloon = 'between 0 and 4194304 MiB';
  else if (f.balloon > f.memory) e.balloon = 'at most the memory size';
  if (f.netBridge && !/^[A-Za-z0-9_.-]{1,15}$/.test(f.netBridge)) e.netBridge = 'an interface name of at most 15 characters';
  return e;
}

export function toRequest(f: CreateForm): VMCreate {
  const boot: string[] = [];
  const req: VMCreate = {
    node: f.node || undefined,
    vmid: f.vmid === '' ? undefined : f.vmid,
    name: f.name || undefined,
    tags: f.tags.length ? f.tags : undefined,
    machine: f.machine, bios: f.bios, vga: f.vga, serial: f.serial,
    sockets: f.sockets, cores: f.cores, cpu: f.cpu as VMCreate['cpu'], memory: f.memory, balloon: f.balloon,
    start: f.start,
  };
  if (f.diskStorage) {
    req.disks = [{ bus: f.diskBus, storage: f.diskStorage, size: f.diskSize }];
  }
  if (f.iso) {
    req.cdroms = [{ volume: f.iso }];
    boot.push('cdrom0');
  }
  if (f.diskStorage) boot.push('disk0');
  if (f.netBridge) req.nets = [{ model: f.netModel, bridge: f.netBridge }];
  if (boot.length) req.boot = boot;
  return req;
}
