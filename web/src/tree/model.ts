// The resource tree as a flat list of rows, built from /cluster/resources.
// Pure functions: the virtualized list renders whatever rows come out, so
// 10,000 guests cost one pass here and a screenful of DOM nodes.
import type { Resource } from '../api/types';

export type TreeView = 'server' | 'pool' | 'tag';

export interface Row {
  key: string; // unique; also the selection/route id for resources ("qemu/100")
  depth: number;
  kind: 'datacenter' | 'node' | 'qemu' | 'lxc' | 'storage' | 'group';
  label: string;
  resource?: Resource;
  hasChildren: boolean;
  expanded: boolean;
}

export const DATACENTER = 'datacenter';
const guestTypes = new Set(['qemu', 'lxc']);

export function isGuest(r: Resource): boolean {
  return guestTypes.has(r.type);
}

export function tagsOf(r: Resource): string[] {
  return (r.tags ?? '').split(/[,;\s]+/).filter(Boolean);
}

/** A guest matches when the query is in its ID, name or a tag (case-insensitive). */
export function matches(r: Resource, q: string): boolean {
  if (!q) return true;
  if (r.vmid !== undefined && String(r.vmid).includes(q)) return true;
  const lq = q.toLowerCase();
  if ((r.name ?? '').toLowerCase().includes(lq)) return true;
  return tagsOf(r).some((t) => t.toLowerCase().includes(lq));
}

export function guestLabel(r: Resource): string {
  return r.name ? `${r.vmid} (${r.name})` : String(r.vmid);
}

function push<K, V>(m: Map<K, V[]>, k: K, v: V) {
  const l = m.get(k);
  if (l) l.push(v);
  else m.set(k, [v]);
}

const byVMID = (a: Resource, b: Resource) => (a.vmid ?? 0) - (b.vmid ?? 0);

/**
 * Rows of the tree. collapsed holds keys of collapsed groups. While
 * searching, only matching guests show (and the groups holding them), all
 * expanded; nodes and storage stay out of a search's way unless they match
 * by name.
 */
export function buildRows(resources: Resource[], view: TreeView, query: string, collapsed: ReadonlySet<string>): Row[] {
  const q = query.trim();
  const rows: Row[] = [];
  const open = (key: string) => q !== '' || !collapsed.has(key);
  const guests = resources.filter((r) => isGuest(r) && matches(r, q)).sort(byVMID);
  const dcOpen = open(DATACENTER);
  rows.push({ key: DATACENTER, depth: 0, kind: 'datacenter', label: 'Datacenter', hasChildren: true, expanded: dcOpen });
  if (!dcOpen) return rows;
  const pushGuests = (list: Resource[], depth: number) => {
    for (const g of list) {
      rows.push({ key: g.id, depth, kind: g.type as Row['kind'], label: guestLabel(g), resource: g, hasChildren: false, expanded: false });
    }
  };
  if (view === 'server') {
    const nodes = resources.filter((r) => r.type === 'node').sort((a, b) => (a.node ?? '').localeCompare(b.node ?? ''));
    const nodeNames = new Set(nodes.map((n) => n.node));
    // Guests on nodes the caller can't see still show, under their node name.
    for (const g of guests) {
      if (g.node && !nodeNames.has(g.node)) {
        nodeNames.add(g.node);
        nodes.push({ id: 'node/' + g.node, type: 'node', node: g.node, name: g.node, status: 'unknown' });
      }
    }
    const byNode = new Map<string, Resource[]>();
    for (const g of guests) push(byNode, g.node ?? '', g);
    const storage = resources.filter((r) => r.type === 'storage' && (!q || (r.storage ?? '').toLowerCase().includes(q.toLowerCase())));
    for (const n of nodes) {
      const mine = byNode.get(n.node ?? '') ?? [];
      const pools = storage.filter((s) => s.node === n.node).sort((a, b) => (a.storage ?? '').localeCompare(b.storage ?? ''));
      if (q && mine.length === 0 && pools.length === 0 && !(n.node ?? '').includes(q)) continue;
      const nOpen = open(n.id);
      rows.push({ key: n.id, depth: 1, kind: 'node', label: n.node ?? n.id, resource: n, hasChildren: mine.length + pools.length > 0, expanded: nOpen });
      if (!nOpen) continue;
      pushGuests(mine, 2);
      for (const s of pools) {
        rows.push({ key: s.id, depth: 2, kind: 'storage', label: s.storage ?? s.id, resource: s, hasChildren: false, expanded: false });
      }
    }
    return rows;
  }
  const groups = new Map<string, Resource[]>();
  for (const g of guests) {
    const names = view === 'pool' ? [g.pool || ''] : tagsOf(g).length ? tagsOf(g) : [''];
    for (const name of names) push(groups, name, g);
  }
  const none = view === 'pool' ? '(no pool)' : '(no tags)';
  const names = [...groups.keys()].sort((a, b) => (a === '' ? 1 : b === '' ? -1 : a.localeCompare(b)));
  for (const name of names) {
    const key = `${view}:${name}`;
    const gOpen = open(key);
    const list = groups.get(name)!;
    rows.push({ key, depth: 1, kind: 'group', label: name || none, hasChildren: true, expanded: gOpen });
    if (gOpen) pushGuests(list, 2);
  }
  return rows;
}
