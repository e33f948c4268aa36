export function bytes(n: number | undefined): string {
  if (n === undefined || n === null || Number.isNaN(n)) return '—';
  const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < u.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v >= 100 || i === 0 ? Math.round(v) : v.toFixed(1)} ${u[i]}`;
}

export function duration(sec: number | undefined): string {
  if (!sec || sec < 0) return '—';
  const d = Math.floor(sec / 86400);
  const h = Math.floor((sec % 86400) / 3600);
  const m = Math.floor((sec % 3600) / 60);
  const s = Math.floor(sec % 60);
  if (d) return `${d}d ${h}h ${m}m`;
  if (h) return `${h}h ${m}m ${s}s`;
  return `${m}m ${s}s`;
}

export function pct(used: number, total: number): number {
  return total > 0 ? Math.min(100, (100 * used) / total) : 0;
}

export function time(t: string | undefined): string {
  return t ? new Date(t).toLocaleString() : '—';
}

/** "UPID:n1:...:qmstart:100:root@pam:" → {type: "qmstart", target: "100"} for display. */
export function taskLabel(t: { type: string; target?: string }): string {
  return t.target ? `${t.type} ${t.target}` : t.type;
}
