// A running VM keeps changes that need a restart as a full pending config;
// the editor shows, per field, the value now and the value after restart.
// The same for VMs and containers.
export type ConfigKey = string;
type Config = object;

const same = (a: unknown, b: unknown) => JSON.stringify(a ?? null) === JSON.stringify(b ?? null);

/** Keys whose pending value differs from the running config. */
export function pendingKeys(config: Config, pending?: Config | null): Set<ConfigKey> {
  const out = new Set<ConfigKey>();
  if (!pending) return out;
  const a = config as Record<string, unknown>;
  const b = pending as Record<string, unknown>;
  const all = new Set([...Object.keys(a), ...Object.keys(b)]);
  for (const k of all) if (!same(a[k], b[k])) out.add(k);
  return out;
}

/** Display text for a config value. */
export function show(key: ConfigKey, v: unknown): string {
  if (v === undefined || v === null || v === '') return '—';
  if (typeof v === 'boolean') return v ? 'yes' : 'no';
  if (key === 'memory' || key === 'balloon' || key === 'swap') return `${v} MiB`;
  if (Array.isArray(v)) {
    if (v.length === 0) return '—';
    if (typeof v[0] === 'string') return v.join(', ');
    return v.map((x) => Object.entries(x as object).filter(([, y]) => y !== '' && y !== false && y !== undefined).map(([k, y]) => `${k}=${y}`).join(' ')).join(' | ');
  }
  if (typeof v === 'object') return Object.entries(v as object).map(([k, y]) => `${k}=${JSON.stringify(y)}`).join(' ');
  return String(v);
}
