import { describe, expect, it } from 'vitest';
import type { Task } from './types';
import { endedTasks, invalidationsFor } from './live';

const t = (id: string, status: Task['status']): Task => ({ id, node: 'n1', type: 'qmstart', user: 'u', status, start_time: '' });

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
