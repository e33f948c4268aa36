// The container's settings as editor rows. Limits mirror api/ct.go; memory,
// swap and CPU limits apply to a running container at once, the rest waits
// for its next start (pending).
import type { Field } from '../vm/ConfigEditor';

export const resourceFields: Field[] = [
  { key: 'memory', label: 'Memory (MiB)', kind: 'number', min: 16, max: 4194304, priv: 'VM.Config.Memory', live: true },
  { key: 'swap', label: 'Swap (MiB)', kind: 'number', min: 0, max: 4194304, priv: 'VM.Config.Memory', live: true },
  { key: 'cores', label: 'Cores', kind: 'number', min: 1, max: 128, priv: 'VM.Config.CPU', live: true },
  { key: 'cpulimit', label: 'CPU limit (CPUs, 0 = none)', kind: 'number', min: 0, max: 128, decimal: true, priv: 'VM.Config.CPU', live: true },
  { key: 'cpuunits', label: 'CPU weight', kind: 'number', min: 0, max: 10000, priv: 'VM.Config.CPU', live: true },
  { key: 'rootfs', label: 'Root filesystem', kind: 'readonly', priv: 'VM.Config.Disk' },
  { key: 'mountpoints', label: 'Mount points', kind: 'readonly', priv: 'VM.Config.Disk' },
];

export const dnsFields: Field[] = [
  { key: 'nameserver', label: 'DNS servers', kind: 'tags', priv: 'VM.Config.Network' },
  { key: 'searchdomain', label: 'DNS domain', kind: 'text', priv: 'VM.Config.Network' },
];

export const ctOptionFields: Field[] = [
  { key: 'hostname', label: 'Hostname', kind: 'text', priv: 'VM.Config.Options' },
  { key: 'description', label: 'Notes', kind: 'textarea', priv: 'VM.Config.Options' },
  { key: 'tags', label: 'Tags', kind: 'tags', priv: 'VM.Config.Options' },
  { key: 'onboot', label: 'Start at boot', kind: 'bool', priv: 'VM.Config.Options' },
  { key: 'startup', label: 'Start order (order=N,up=S,down=S)', kind: 'text', priv: 'VM.Config.Options' },
  { key: 'protection', label: 'Protection (refuse deletion)', kind: 'bool', priv: 'VM.Config.Options' },
  { key: 'console', label: 'Console on /dev/console', kind: 'bool', priv: 'VM.Config.Options' },
  { key: 'unprivileged', label: 'Unprivileged', kind: 'readonly', priv: 'VM.Config.Options' },
  { key: 'features', label: 'Features', kind: 'readonly', priv: 'VM.Config.Options' },
  { key: 'ostype', label: 'OS type', kind: 'readonly', priv: 'VM.Config.Options' },
];
