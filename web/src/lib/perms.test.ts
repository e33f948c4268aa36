import { describe, expect, it } from 'vitest';
import { can, canAnyBelow, privsOn } from './perms';

const perms = {
  '/': ['Sys.Audit'],
  '/vms': ['VM.Audit', 'VM.Allocate'],
  '/vms/101': ['VM.Audit', 'VM.Console', 'VM.PowerMgmt'],
  '/storage/local': ['Datastore.Audit'],
};

describe('privsOn', () => {
  it.each([
    ['/', ['Sys.Audit']],
    ['/vms/100', ['VM.Audit', 'VM.Allocate']],
    ['/vms/101', ['VM.Audit', 'VM.Console', 'VM.PowerMgmt']],
    ['/vms/101/', ['VM.Audit', 'VM.Console', 'VM.PowerMgmt']],
    ['/storage/other', ['Sys.Audit']],
    ['/storage/local/x', ['Datastore.Audit']],
  ])('%s', (path, want) => {
    expect([...privsOn(perms, path)].sort()).toEqual([...want].sort());
  });
  it('is empty without permissions', () => {
    expect(privsOn(undefined, '/vms').size).toBe(0);
    expect(privsOn({}, '/vms').size).toBe(0);
  });
});

describe('can', () => {
  it('needs every privilege', () => {
    expect(can(perms, '/vms/101', 'VM.Console', 'VM.PowerMgmt')).toBe(true);
    expect(can(perms, '/vms/101', 'VM.Allocate')).toBe(false); // replaced by the more specific entry
    expect(can(perms, '/vms/100', 'VM.Allocate')).toBe(true);
  });
  it('finds privileges below a path', () => {
    expect(canAnyBelow({ '/vms/7': ['VM.Audit'] }, '/vms', 'VM.Audit')).toBe(true);
    expect(canAnyBelow({ '/vms/7': ['VM.Audit'] }, '/storage', 'VM.Audit')).toBe(false);
  });
});
