import { describe, expect, it } from 'vitest';
import { actionState, type GuestAction } from './actions';

const admin = { '/': ['VM.PowerMgmt', 'VM.Console', 'VM.Clone', 'VM.Allocate', 'VM.Audit'] };
const user = { '/vms/101': ['VM.Audit', 'VM.PowerMgmt', 'VM.Console'] };

describe('actionState', () => {
  it.each<[string, string, boolean, GuestAction, boolean, boolean]>([
    ['admin starts a stopped VM', 'stopped', false, 'start', true, true],
    ['admin cannot start a running VM', 'running', false, 'start', true, false],
    ['no start for templates', 'stopped', true, 'start', true, false],
    ['shutdown needs running', 'stopped', false, 'shutdown', true, false],
    ['reset a running VM', 'running', false, 'reset', true, true],
    ['stop a paused VM', 'paused', false, 'stop', true, true],
    ['resume only when paused', 'running', false, 'resume', true, false],
    ['destroy only when stopped', 'running', false, 'destroy', true, false],
    ['destroy a stopped VM', 'stopped', false, 'destroy', true, true],
    ['convert a stopped VM to a template', 'stopped', false, 'template', true, true],
    ['resume a frozen container', 'frozen', false, 'resume', true, true],
    ['stop a frozen container', 'frozen', false, 'stop', true, true],
    ['no suspend of a frozen container', 'frozen', false, 'suspend', true, false],
  ])('%s', (_, status, template, a, allowed, enabled) => {
    expect(actionState(admin, { vmid: 101, status, template }, a)).toEqual({ allowed, enabled });
  });
  it('a restricted user has power but not destroy or clone', () => {
    const s = { vmid: 101, status: 'stopped', template: false };
    expect(actionState(user, s, 'start')).toEqual({ allowed: true, enabled: true });
    expect(actionState(user, s, 'destroy').allowed).toBe(false);
    expect(actionState(user, s, 'clone').allowed).toBe(false);
    expect(actionState(user, { ...s, vmid: 102 }, 'start').allowed).toBe(false);
  });
  it('a lock disables everything but the console', () => {
    const s = { vmid: 101, status: 'running', template: false, lock: 'snapshot' };
    expect(actionState(admin, s, 'stop').enabled).toBe(false);
    expect(actionState(admin, s, 'console').enabled).toBe(true);
  });
});
