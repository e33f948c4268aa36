import { describe, expect, it } from 'vitest';
import { defaultForm, formField, stepOf, toRequest, validate } from './createForm';

describe('validate', () => {
  it('accepts the defaults', () => expect(validate(defaultForm)).toEqual({}));
  it.each([
    ['vmid', { vmid: 99 }],
    ['name', { name: '-bad' }],
    ['name', { name: 'x'.repeat(64) }],
    ['tags', { tags: ['ok', 'no spaces'] }],
    ['diskSize', { diskStorage: 'local', diskSize: '8GB' }],
    ['diskSize', { diskStorage: 'local', diskSize: '0G' }],
    ['sockets', { sockets: 5 }],
    ['cores', { cores: 0 }],
    ['memory', { memory: 8 }],
    ['balloon', { balloon: 1024, memory: 512 }],
    ['netBridge', { netBridge: 'a-very-long-bridge-name' }],
  ])('flags %s', (field, patch) => {
    expect(Object.keys(validate({ ...defaultForm, ...patch }))).toEqual([field]);
  });
});

describe('toRequest', () => {
  it('builds disks, CD-ROM, boot order and NIC', () => {
    const r = toRequest({ ...defaultForm, vmid: 120, name: 'web', iso: 'local:iso/test.iso', diskStorage: 'local', netBridge: 'vmbr0' });
    expect(r).toMatchObject({
      vmid: 120, name: 'web', disks: [{ bus: 'virtio', storage: 'local', size: '8G' }], cdroms: [{ volume: 'local:iso/test.iso' }],
      boot: ['cdrom0', 'disk0'], nets: [{ model: 'virtio', bridge: 'vmbr0' }],
    });
  });
  it('leaves out what was not chosen', () => {
    const r = toRequest(defaultForm);
    expect(r.disks).toBeUndefined();
    expect(r.cdroms).toBeUndefined();
    expect(r.nets).toBeUndefined();
    expect(r.vmid).toBeUndefined();
  });
});

describe('server field errors', () => {
  it.each([
    ['disks[0].size', 'diskSize', 3],
    ['name', 'name', 0],
    ['memory', 'memory', 5],
    ['cdroms[0].volume', 'iso', 1],
    ['nets[0].bridge', 'netBridge', 6],
  ])('%s → %s on step %d', (f, field, step) => {
    expect(formField(f)).toBe(field);
    expect(stepOf(f)).toBe(step);
  });
});
