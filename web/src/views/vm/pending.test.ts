import { describe, expect, it } from 'vitest';
import type { VMConfig } from '../../api/types';
import { pendingKeys, show } from './pending';

const base: VMConfig = { vmid: 100, node: 'n1', cores: 1, sockets: 1, cpu: 'qemu64', memory: 512, machine: 'q35', bios: 'seabios', serial: true, vga: 'std', uuid: 'u', nets: [{ model: 'virtio', bridge: 'br0' }] };

describe('pendingKeys', () => {
  it('is empty without pending changes', () => {
    expect(pendingKeys(base, undefined).size).toBe(0);
    expect(pendingKeys(base, base).size).toBe(0);
  });
  it('finds changed scalars and lists', () => {
    const p = { ...base, memory: 1024, nets: [{ model: 'e1000' as const, bridge: 'br0' }] };
    expect([...pendingKeys(base, p)].sort()).toEqual(['memory', 'nets']);
  });
  it('treats a removed field as a change', () => {
    const p: VMConfig = { ...base };
    delete p.nets;
    expect([...pendingKeys(base, p)]).toEqual(['nets']);
  });
});

describe('show', () => {
  it.each([
    ['memory', 512, '512 MiB'],
    ['serial', true, 'yes'],
    ['tags', ['a', 'b'], 'a, b'],
    ['nets', [{ model: 'virtio', bridge: 'br0', firewall: false }], 'model=virtio bridge=br0'],
    ['name', '', '—'],
  ] as const)('%s', (k, v, want) => expect(show(k, v)).toBe(want));
});
