// Which guest actions a caller may press now: each needs its privilege on
// /vms/{id} (as the server registers them) and a state that allows it.
// Shared by VMs and containers.
import type { Permissions } from '../../api/types';
import { can } from '../../lib/perms';

export type GuestAction =
  | 'start' | 'shutdown' | 'stop' | 'reboot' | 'reset' | 'suspend' | 'resume'
  | 'console' | 'clone' | 'template' | 'destroy';

export interface GuestState {
  vmid: number;
  status: string; // running, stopped, paused (VM), frozen (container), unknown
  template: boolean;
  lock?: string;
}

const privFor: Record<GuestAction, string> = {
  start: 'VM.PowerMgmt', shutdown: 'VM.PowerMgmt', stop: 'VM.PowerMgmt', reboot: 'VM.PowerMgmt', reset: 'VM.PowerMgmt',
  suspend: 'VM.PowerMgmt', resume: 'VM.PowerMgmt', console: 'VM.Console', clone: 'VM.Clone',
  template: 'VM.Allocate', destroy: 'VM.Allocate',
};

function stateAllows(a: GuestAction, s: GuestState): boolean {
  if (s.lock && a !== 'console') return false;
  const running = s.status === 'running';
  const paused = s.status === 'paused' || s.status === 'frozen'; // a frozen container is a paused VM
  switch (a) {
    case 'start': return s.status === 'stopped' && !s.template;
    case 'shutdown':
    case 'reboot':
    case 'reset':
    case 'suspend': return running;
    case 'stop': return running || paused;
    case 'resume': return paused;
    case 'console': return running || paused;
    case 'clone': return true;
    case 'template': return s.status === 'stopped' && !s.template;
    case 'destroy': return s.status === 'stopped';
  }
}

export interface ActionState {
  allowed: boolean; // the caller holds the privilege (else the button is hidden)
  enabled: boolean; // and the guest's state allows it now
}

export function actionState(perms: Permissions | undefined, s: GuestState, a: GuestAction): ActionState {
  const allowed = can(perms, `/vms/${s.vmid}`, privFor[a]);
  return { allowed, enabled: allowed && stateAllows(a, s) };
}
