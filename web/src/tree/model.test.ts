import { describe, expect, it } from 'vitest';
import type { Resource } from '../api/types';
import { buildRows, matches } from './model';

const res: Resource[] = [
  { id: 'node/n1', type: 'node', node: 'n1', name: 'n1', status: 'online' },
  { id: 'node/n2', type: 'node', node: 'n2', name: 'n2', status: 'online' },
  { id: 'qemu/101', type: 'qemu', vmid: 101, node: 'n1', name: 'web', status: 'running', tags: 'prod,frontend', pool: 'shop' },
  { id: 'qemu/100', type: 'qemu', vmid: 100, node: 'n1', name: 'db', status: 'stopped', tags: 'prod' },
  { id: 'lxc/200', type: 'lxc', vmid: 200, node: 'n2', name: 'cache', status: 'running', pool: 'shop' },
  { id: 'qemu/900', type: 'qemu', vmid: 900, node: 'n2', name: 'tmpl', status: 'stopped', template: true },
  { id: 'storage/n1/local', type: 'storage', node: 'n1', storage: 'local', status: 'available' },
];
const keys = (rows: { key: string }[]) => rows.map((r) => r.key);

describe('buildRows', () => {
  it('server view: datacenter, nodes, guests by ID, then storage', () => {
    expect(keys(buildRows(res, 'server', '', new Set()))).toEqual([
      'datacenter', 'node/n1', 'qemu/100', 'qemu/101', 'storage/n1/local', 'node/n2', 'lxc/200', 'qemu/900',
    ]);
  });
  it('collapsing a node hides its children', () => {
    const rows = buildRows(res, 'server', '', new Set(['node/n1']));
    expect(keys(rows)).toEqual(['datacenter', 'node/n1', 'node/n2', 'lxc/200', 'qemu/900']);
    expect(rows[1].expanded).toBe(false);
  });
  it('pool view groups guests, the ones without a pool last', () => {
    expect(keys(buildRows(res, 'pool', '', new Set()))).toEqual([
      'datacenter', 'pool:shop', 'qemu/101', 'lxc/200', 'pool:', 'qemu/100', 'qemu/900',
    ]);
  });
  it('tag view lists a guest under each of its tags', () => {
    expect(keys(buildRows(res, 'tag', '', new Set()))).toEqual([
      'datacenter', 'tag:frontend', 'qemu/101', 'tag:prod', 'qemu/100', 'qemu/101', 'tag:', 'lxc/200', 'qemu/900',
    ]);
  });
  it.each([
    ['by ID', '90', ['datacenter', 'node/n2', 'qemu/900']],
    ['by name', 'WEB', ['datacenter', 'node/n1', 'qemu/101']],
    ['by tag', 'front', ['datacenter', 'node/n1', 'qemu/101']],
    ['nothing', 'zzz', ['datacenter']],
  ])('search %s', (_, q, want) => {
    expect(keys(buildRows(res, 'server', q as string, new Set(['node/n1', 'node/n2'])))).toEqual(want);
  });
  it('matches', () => {
    expect(matches(res[2], 'prod')).toBe(true);
    expect(matches(res[2], '101')).toBe(true);
    expect(matches(res[2], 'cache')).toBe(false);
  });
  it('builds and filters 10,000 guests well under a second', () => {
    const many: Resource[] = [{ id: 'node/n1', type: 'node', node: 'n1' }];
    for (let i = 0; i < 10000; i++) {
      many.push({ id: `qemu/${1000 + i}`, type: 'qemu', vmid: 1000 + i, node: 'n1', name: `guest-${i}`, status: i % 3 ? 'running' : 'stopped', tags: i % 7 ? 'a' : 'b' });
    }
    const t0 = performance.now();
    const all = buildRows(many, 'server', '', new Set());
    const some = buildRows(many, 'server', 'guest-99', new Set());
    const tags = buildRows(many, 'tag', '', new Set());
    const ms = performance.now() - t0;
    expect(all.length).toBe(10002);
    expect(some.length).toBe(2 + 111); // guest-99, guest-990..999, guest-9900..9999
    expect(tags.length).toBe(1 + 2 + 10000);
    expect(ms).toBeLessThan(1000);
  });
});
