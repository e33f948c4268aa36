import { describe, expect, it } from 'vitest';
import { parseRoute, routePath } from './route';

describe('parseRoute', () => {
  it.each([
    ['/', { kind: 'datacenter', id: 'datacenter', tab: undefined }],
    ['/datacenter/users', { kind: 'datacenter', id: 'datacenter', tab: 'users' }],
    ['/node/n1', { kind: 'node', id: 'node/n1', node: 'n1', tab: undefined }],
    ['/qemu/100/console', { kind: 'qemu', id: 'qemu/100', vmid: 100, tab: 'console' }],
    ['/lxc/200', { kind: 'lxc', id: 'lxc/200', vmid: 200, tab: undefined }],
    ['/storage/n1/local/content', { kind: 'storage', id: 'storage/n1/local', node: 'n1', storage: 'local', tab: 'content' }],
    ['/qemu/abc', { kind: 'unknown', id: '' }],
    ['/nothing', { kind: 'unknown', id: '' }],
  ])('%s', (path, want) => expect(parseRoute(path)).toEqual(want));
  it('round-trips', () => {
    expect(routePath('qemu/100', 'hardware')).toBe('/qemu/100/hardware');
    expect(routePath('datacenter')).toBe('/datacenter');
    expect(parseRoute(routePath('storage/n1/local')).storage).toBe('local');
  });
});
