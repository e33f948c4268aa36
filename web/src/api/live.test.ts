import { describe, expect, it } from 'vitest';
import { QueryClient } from '@tanstack/react-query';
import type { Resource, Task } from './types';
import { applyEvent, endedTasks, invalidationsFor, keysForEvent, patchResources, patchTasks } from './live';

const t = (id: string, status: Task['status']): Task => ({ id, node: 'n1', type: 'qmstart', user: 'u', status, start_time: '' });
const res: Resource[] = [
  { id: 'node/n1', type: 'node', node: 'n1', status: 'online' },
  { id: 'qemu/100', type: 'qemu', vmid: 100, node: 'n1', status: 'stopped' },
  { id: 'lxc/101', type: 'lxc', vmid: 101, node: 'n1', status: 'stopped' },
];

describe('endedTasks', () => {
  it('finds tasks that were running and are not any more', () => {
    const prev = new Map([['a', 'running'], ['b', 'running'], ['c', 'ok']]);
    expect(endedTasks(prev, [t('a', 'ok'), t('b', 'running'), t('c', 'ok'), t('d', 'failed')]).map((x) => x.id)).toEqual(['a']);
  });
});

describe('invalidationsFor', () => {
  it.each([
    ['qmstart', ['resources', 'vms', 'storage']],
    ['vzcreate', ['resources', 'containers', 'storage']],
    ['download', ['storage', 'resources']],
    ['acl', ['access', 'permissions', 'resources']],
    ['firewall', ['network', 'firewall']],
  ])('%s', (kind, want) => expect(invalidationsFor(kind).map((k) => k[0])).toEqual(want));
});

describe('events', () => {
  it.each([
    [{ type: 'guest.state', vmid: 101, guest_type: 'lxc', status: 'running' }, [['containers', 101], ['resources']]],
    [{ type: 'guest.config', vmid: 100, guest_type: 'qemu' }, [['vms', 100], ['resources']]],
    [{ type: 'guest.created', vmid: 102, guest_type: 'lxc' }, [['resources'], ['containers']]],
    [{ type: 'network.changed', object: 'network/zones/z1' }, [['network'], ['firewall']]],
    [{ type: 'node.offline', node: 'n2' }, [['nodes'], ['resources']]],
    [{ type: 'reset' }, [['*']]],
  ])('%o makes %o stale', (ev, want) => expect(keysForEvent(ev)).toEqual(want));

  it('writes a guest state change into the tree at once', () => {
    const out = patchResources(res, { type: 'guest.state', vmid: 101, status: 'running' })!;
    expect(out.find((r) => r.vmid === 101)?.status).toBe('running');
    expect(out.find((r) => r.vmid === 100)?.status).toBe('stopped');
    expect(patchResources(res, { type: 'guest.state', vmid: 100, status: 'stopped' })).toBe(res); // no change, same list
    expect(patchResources(res, { type: 'guest.deleted', vmid: 100 })!.map((r) => r.id)).toEqual(['node/n1', 'lxc/101']);
  });

  it('upserts tasks', () => {
    const l = [t('a', 'running')];
    expect(patchTasks(l, { type: 'task.finished', task: t('a', 'ok') })).toEqual([t('a', 'ok')]);
    expect(patchTasks(l, { type: 'task.started', task: t('b', 'running') })!.map((x) => x.id)).toEqual(['b', 'a']);
  });

  it('applies to the query cache', () => {
    const qc = new QueryClient();
    qc.setQueryData(['resources'], res);
    qc.setQueryData(['containers', 101, 'status'], { status: 'stopped', cpu: 0 });
    const stale: unknown[] = [];
    applyEvent(qc, { type: 'guest.state', vmid: 101, guest_type: 'lxc', status: 'running' }, (k) => stale.push(k));
    expect(qc.getQueryData<Resource[]>(['resources'])!.find((r) => r.vmid === 101)?.status).toBe('running');
    expect(qc.getQueryData(['containers', 101, 'status'])).toEqual({ status: 'running', cpu: 0 });
    expect(stale).toEqual([['containers', 101], ['resources']]);
  });
});
