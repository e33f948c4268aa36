// The snapshot tree of a VM: take, roll back, delete.
import { useState } from 'react';
import { Alert, Badge, Button, Group, Modal, Stack, Table, Text, TextInput, Textarea } from '@mantine/core';
import { ApiError, del, errorText, post } from '../../api/client';
import { keys, useCTSnapshots, usePermissions, useSnapshots } from '../../api/queries';
import type { VMSnapshot } from '../../api/types';
import { guestAPI, type GuestKind } from './GuestActions';
import { time } from '../../lib/format';
import { can } from '../../lib/perms';
import { useTaskAction } from '../../lib/useTask';

/** Snapshots in tree order (parents before children) with their depth. */
type Snap = Pick<VMSnapshot, 'name' | 'time'> & Partial<VMSnapshot>;

export function snapshotTree<T extends Snap>(list: T[]): { snap: T; depth: number }[] {
  const names = new Set(list.map((s) => s.name));
  const kids = new Map<string, T[]>();
  for (const s of list) {
    const p = s.parent && names.has(s.parent) ? s.parent : '';
    kids.set(p, [...(kids.get(p) ?? []), s]);
  }
  const out: { snap: T; depth: number }[] = [];
  const walk = (p: string, depth: number) => {
    for (const s of (kids.get(p) ?? []).sort((a, b) => a.time.localeCompare(b.time))) {
      out.push({ snap: s, depth });
      walk(s.name, depth + 1);
    }
  };
  walk('', 0);
  return out;
}

export const snapshotNameRe = /^[A-Za-z][A-Za-z0-9_-]*$/;

export function Snapshots({ vmid, kind = 'qemu' }: { vmid: number; kind?: GuestKind }) {
  const vmSnaps = useSnapshots(kind === 'qemu' ? vmid : 0);
  const ctSnaps = useCTSnapshots(kind === 'lxc' ? vmid : 0);
  const snaps: { data?: Snap[]; error: unknown } = kind === 'lxc' ? ctSnaps : vmSnaps;
  const g = guestAPI(kind, vmid);
  const perms = usePermissions();
  const mayTake = can(perms.data, `/vms/${vmid}`, 'VM.Snapshot');
  const mayRollback = can(perms.data, `/vms/${vmid}`, 'VM.Snapshot.Rollback');
  const inv = [kind === 'lxc' ? keys.ctSnapshots(vmid) : keys.snapshots(vmid), ...g.keys];
  const rollback = useTaskAction((n: string) => `roll back ${g.label} to ${n}`, (n: string) => post(`${g.base}/snapshot/${encodeURIComponent(n)}/rollback`), inv);
  const remove = useTaskAction((n: string) => `delete snapshot ${n}`, (n: string) => del(`${g.base}/snapshot/${encodeURIComponent(n)}`), inv);
  const [taking, setTaking] = useState(false);
  if (snaps.error) return <Alert color="red">{errorText(snaps.error)}</Alert>;
  return (
    <Stack>
      <Group>{mayTake && <Button size="xs" onClick={() => setTaking(true)}>Take snapshot</Button>}</Group>
      <Table withTableBorder fz="sm" aria-label="Snapshots">
        <Table.Thead>
          <Table.Tr><Table.Th>Name</Table.Th><Table.Th>Taken</Table.Th>{kind === 'qemu' && <Table.Th>RAM</Table.Th>}<Table.Th>Description</Table.Th><Table.Th /></Table.Tr>
        </Table.Thead>
        <Table.Tbody>
          {snapshotTree(snaps.data ?? []).map(({ snap, depth }) => (
            <Table.Tr key={snap.name}>
              <Table.Td style={{ paddingLeft: 12 + depth * 18 }}>
                {depth > 0 ? '└ ' : ''}{snap.name} {snap.current && <Badge size="xs">current</Badge>}
              </Table.Td>
              <Table.Td>{time(snap.time)}</Table.Td>
              {kind === 'qemu' && <Table.Td>{snap.vmstate ? 'yes' : 'no'}</Table.Td>}
              <Table.Td>{snap.description}</Table.Td>
              <Table.Td>
                <Group gap={4} justify="flex-end">
                  {mayRollback && <Button size="compact-xs" variant="default" onClick={() => rollback.mutate(snap.name)}>Roll back</Button>}
                  {mayTake && <Button size="compact-xs" variant="subtle" color="red" onClick={() => remove.mutate(snap.name)}>Delete</Button>}
                </Group>
              </Table.Td>
            </Table.Tr>
          ))}
          {snaps.data?.length === 0 && <Table.Tr><Table.Td colSpan={5}><Text c="dimmed" size="sm">No snapshots</Text></Table.Td></Table.Tr>}
        </Table.Tbody>
      </Table>
      {taking && <TakeSnapshot base={g.base} label={g.label} queryKey={inv[0]} onClose={() => setTaking(false)} />}
    </Stack>
  );
}

function TakeSnapshot({ base, label, queryKey, onClose }: { base: string; label: string; queryKey: readonly unknown[]; onClose: () => void }) {
  const [name, setName] = useState('');
  const [description, setDescription] = useState('');
  const [err, setErr] = useState<Record<string, string>>({});
  const take = useTaskAction(() => `snapshot ${label}`, () => post(`${base}/snapshot`, { name, description }), [queryKey]);
  const submit = () => {
    if (!snapshotNameRe.test(name) || name.length > 40) {
      setErr({ name: 'starts with a letter; letters, digits, _ and -; at most 40 characters' });
      return;
    }
    take.mutate(undefined, {
      onSuccess: onClose,
      onError: (e) => setErr(e instanceof ApiError ? e.fieldErrors() : {}),
    });
  };
  return (
    <Modal opened onClose={onClose} title="Take snapshot">
      <form onSubmit={(e) => { e.preventDefault(); submit(); }}>
        <Stack>
          <TextInput label="Name" value={name} onChange={(e) => setName(e.currentTarget.value)} error={err.name} data-autofocus />
          <Textarea label="Description" value={description} onChange={(e) => setDescription(e.currentTarget.value)} error={err.description} />
          <Group justify="flex-end"><Button variant="default" onClick={onClose}>Cancel</Button><Button type="submit" loading={take.isPending}>Take</Button></Group>
        </Stack>
      </form>
    </Modal>
  );
}
