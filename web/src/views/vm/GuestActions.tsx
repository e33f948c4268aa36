// The action bar of a guest: power, console, clone, template, destroy.
// Buttons the caller has no privilege for are not shown; those the state
// does not allow are disabled. Destroy asks for the ID to be typed.
import { useState } from 'react';
import { Button, Checkbox, Group, Menu, Modal, NumberInput, Stack, Text, TextInput } from '@mantine/core';
import { ApiError, del, post, request } from '../../api/client';
import { keys, usePermissions } from '../../api/queries';
import { navigate, routePath } from '../../lib/route';
import { useTaskAction } from '../../lib/useTask';
import { actionState, type GuestAction, type GuestState } from './actions';

export type GuestKind = 'qemu' | 'lxc';

/** The API path, label and query keys of a guest of either kind. */
export function guestAPI(kind: GuestKind, id: number) {
  return kind === 'lxc'
    ? { base: `/containers/${id}`, label: `CT ${id}`, noun: 'container', keys: [keys.ctStatus(id), keys.ct(id), keys.resources] }
    : { base: `/vms/${id}`, label: `VM ${id}`, noun: 'VM', keys: [keys.vmStatus(id), keys.vm(id), keys.resources] };
}

export function GuestActions({ state, name, onConsole, kind = 'qemu' }: { state: GuestState; name?: string; onConsole: () => void; kind?: GuestKind }) {
  const perms = usePermissions();
  const id = state.vmid;
  const g = guestAPI(kind, id);
  const st = (a: GuestAction) => actionState(perms.data, state, a);
  const power = useTaskAction(
    (a: string) => `${a} ${g.label}`,
    (a: string) => post(`${g.base}/status/${a}`),
    g.keys,
  );
  const [confirmDestroy, setConfirmDestroy] = useState(false);
  const [cloning, setCloning] = useState(false);
  const btn = (a: GuestAction, label: string, color?: string) => {
    const s = st(a);
    if (!s.allowed) return null;
    return (
      <Button key={a} size="xs" variant="default" c={s.enabled ? color : undefined} disabled={!s.enabled || power.isPending} onClick={() => power.mutate(a)} data-action={a}>
        {label}
      </Button>
    );
  };
  const more = ((kind === 'lxc' ? ['clone', 'template', 'destroy'] : ['reset', 'clone', 'template', 'destroy']) as GuestAction[]).filter((a) => st(a).allowed);
  const template = useTaskAction(() => `convert ${g.label} to a template`, () => post(`${g.base}/template`), g.keys);
  return (
    <Group gap={6}>
      {btn('start', 'Start')}
      {btn('shutdown', 'Shutdown')}
      {btn('reboot', 'Reboot')}
      {btn('suspend', 'Suspend')}
      {btn('resume', 'Resume')}
      {btn('stop', 'Stop', 'red')}
      {st('console').allowed && (
        <Button size="xs" variant="default" disabled={!st('console').enabled} onClick={onConsole} data-action="console">Console</Button>
      )}
      {more.length > 0 && (
        <Menu position="bottom-end">
          <Menu.Target>
            <Button size="xs" variant="default" data-action="more">More ▾</Button>
          </Menu.Target>
          <Menu.Dropdown>
            {kind === 'qemu' && st('reset').allowed && (
              <Menu.Item disabled={!st('reset').enabled} onClick={() => power.mutate('reset')} data-action="reset">Reset (hard)</Menu.Item>
            )}
            {st('clone').allowed && <Menu.Item disabled={!st('clone').enabled} onClick={() => setCloning(true)} data-action="clone">Clone…</Menu.Item>}
            {st('template').allowed && (
              <Menu.Item disabled={!st('template').enabled} onClick={() => template.mutate(undefined)} data-action="template">Convert to template</Menu.Item>
            )}
            {st('destroy').allowed && (
              <Menu.Item color="red" disabled={!st('destroy').enabled} onClick={() => setConfirmDestroy(true)} data-action="destroy">Destroy…</Menu.Item>
            )}
          </Menu.Dropdown>
        </Menu>
      )}
      {confirmDestroy && <DestroyModal kind={kind} vmid={id} name={name} onClose={() => setConfirmDestroy(false)} />}
      {cloning && <CloneModal kind={kind} vmid={id} name={name} template={state.template} onClose={() => setCloning(false)} />}
    </Group>
  );
}

function DestroyModal({ kind, vmid, name, onClose }: { kind: GuestKind; vmid: number; name?: string; onClose: () => void }) {
  const [typed, setTyped] = useState('');
  const [purge, setPurge] = useState(true);
  const g = guestAPI(kind, vmid);
  const destroy = useTaskAction(() => `destroy ${g.label}`, () => del(g.base, { purge }), [keys.resources]);
  return (
    <Modal opened onClose={onClose} title={`Destroy ${g.label}${name ? ` (${name})` : ''}`}>
      <Stack>
        <Text size="sm">This deletes the {g.noun} and frees its {kind === 'lxc' ? 'volumes' : 'disks'}. It cannot be undone. Type the {g.noun}'s ID to confirm.</Text>
        <TextInput label={kind === 'lxc' ? 'CT ID' : 'VM ID'} value={typed} onChange={(e) => setTyped(e.currentTarget.value)} data-autofocus data-testid="destroy-confirm" />
        <Checkbox label={`Also remove the ${g.noun}'s permissions (ACL entries)`} checked={purge} onChange={(e) => setPurge(e.currentTarget.checked)} />
        <Group justify="flex-end">
          <Button variant="default" onClick={onClose}>Cancel</Button>
          <Button
            color="red"
            disabled={typed.trim() !== String(vmid)}
            loading={destroy.isPending}
            onClick={() => destroy.mutate(undefined, { onSuccess: () => { onClose(); navigate('/datacenter'); } })}
          >
            Destroy
          </Button>
        </Group>
      </Stack>
    </Modal>
  );
}

function CloneModal({ kind, vmid, name, template, onClose }: { kind: GuestKind; vmid: number; name?: string; template: boolean; onClose: () => void }) {
  const [newName, setNewName] = useState(name ? `${name}-clone` : '');
  const [newid, setNewid] = useState<number | string>('');
  const [full, setFull] = useState(!template);
  const g = guestAPI(kind, vmid);
  const nameField = kind === 'lxc' ? 'hostname' : 'name';
  const clone = useTaskAction(
    () => `clone ${g.label}`,
    async () =>
      (await request<{ vmid: number; task: string }>('POST', `${g.base}/clone`, {
        body: { [nameField]: newName || undefined, newid: newid === '' ? undefined : Number(newid), full },
      })).data,
    [keys.resources],
  );
  return (
    <Modal opened onClose={onClose} title={`Clone ${g.label}`}>
      <Stack>
        <TextInput label={kind === 'lxc' ? 'Hostname' : 'Name'} value={newName} onChange={(e) => setNewName(e.currentTarget.value)} error={clone.error instanceof ApiError ? clone.error.fieldErrors()[nameField] : undefined} />
        <NumberInput label="New ID" placeholder="next free ID" value={newid} onChange={setNewid} min={100} allowDecimal={false} clampBehavior="none"
          error={clone.error instanceof ApiError ? clone.error.fieldErrors().newid : undefined} />
        <Checkbox label="Full copy (otherwise linked, where the storage can)" checked={full} onChange={(e) => setFull(e.currentTarget.checked)} />
        <Group justify="flex-end">
          <Button variant="default" onClick={onClose}>Cancel</Button>
          <Button
            loading={clone.isPending}
            onClick={() => clone.mutate(undefined, { onSuccess: (r) => { onClose(); const v = (r as { vmid?: number })?.vmid; if (v) navigate(routePath(`${kind}/${v}`)); } })}
          >
            Clone
          </Button>
        </Group>
      </Stack>
    </Modal>
  );
}
