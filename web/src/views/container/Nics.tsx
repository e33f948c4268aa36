// A container's network interfaces: add, edit, remove. The whole list is
// sent with the config's digest (If-Match); on a running container bridge,
// tag, rate and firewall change live, the rest is pending until restart.
import { useState } from 'react';
import { Badge, Button, Checkbox, Group, Modal, NumberInput, SimpleGrid, Stack, Table, Text, TextInput } from '@mantine/core';
import { useMutation, useQueryClient } from '@tanstack/react-query';
import { ApiError, errorText, request } from '../../api/client';
import { keys, usePermissions } from '../../api/queries';
import type { CT, CTNet } from '../../api/types';
import { can } from '../../lib/perms';
import { nicErrors, validateNic } from './nic';

export function Nics({ ct }: { ct: CT }) {
  const perms = usePermissions();
  const id = ct.config.vmid;
  const nets = (ct.pending ?? ct.config).nets ?? [];
  const live = ct.config.nets ?? [];
  const mayEdit = can(perms.data, `/vms/${id}`, 'VM.Config.Network');
  const [editing, setEditing] = useState<number | null>(null); // index, or nets.length for a new one
  const qc = useQueryClient();
  const save = useMutation({
    mutationFn: (list: CTNet[]) => request('PUT', `/containers/${id}/config`, { body: { nets: list }, headers: { 'If-Match': ct.digest } }),
    onSuccess: () => {
      qc.invalidateQueries({ queryKey: keys.ct(id) });
      setEditing(null);
    },
  });
  const nextName = () => {
    for (let i = 0; ; i++) if (!nets.some((n) => n.name === `eth${i}`)) return `eth${i}`;
  };
  return (
    <Stack gap="xs">
      <Group justify="space-between">
        <Text fw={600}>Network devices</Text>
        {mayEdit && <Button size="xs" onClick={() => setEditing(nets.length)} data-testid="nic-add">Add</Button>}
      </Group>
      <Table withTableBorder fz="sm" aria-label="Network devices">
        <Table.Thead>
          <Table.Tr><Table.Th>Name</Table.Th><Table.Th>Bridge</Table.Th><Table.Th>IPv4</Table.Th><Table.Th>IPv6</Table.Th><Table.Th>VLAN</Table.Th><Table.Th>Firewall</Table.Th><Table.Th /></Table.Tr>
        </Table.Thead>
        <Table.Tbody>
          {nets.map((n, i) => {
            const pending = JSON.stringify(live.find((x) => x.name === n.name) ?? null) !== JSON.stringify(n);
            return (
              <Table.Tr key={n.name} data-nic={n.name}>
                <Table.Td>{n.name} {pending && <Badge size="xs" color="orange" variant="light">pending</Badge>}</Table.Td>
                <Table.Td>{n.bridge || '—'}</Table.Td>
                <Table.Td>{n.ip || '—'}{n.gw ? ` via ${n.gw}` : ''}</Table.Td>
                <Table.Td>{n.ip6 || '—'}{n.gw6 ? ` via ${n.gw6}` : ''}</Table.Td>
                <Table.Td>{n.tag || '—'}</Table.Td>
                <Table.Td>{n.firewall ? 'yes' : 'no'}</Table.Td>
                <Table.Td>
                  {mayEdit && (
                    <Group gap={4} justify="flex-end">
                      <Button size="compact-xs" variant="subtle" onClick={() => setEditing(i)}>Edit</Button>
                      <Button size="compact-xs" variant="subtle" color="red" onClick={() => save.mutate(nets.filter((_, k) => k !== i))}>Remove</Button>
                    </Group>
                  )}
                </Table.Td>
              </Table.Tr>
            );
          })}
          {nets.length === 0 && <Table.Tr><Table.Td colSpan={7}><Text size="sm" c="dimmed">No network devices</Text></Table.Td></Table.Tr>}
        </Table.Tbody>
      </Table>
      {save.error && editing === null && <Text c="red" size="sm">{errorText(save.error)}</Text>}
      {editing !== null && (
        <NicForm
          initial={nets[editing] ?? { name: nextName(), ip: 'dhcp' }}
          saving={save.isPending}
          serverErrors={save.error instanceof ApiError ? nicErrors(save.error.fieldErrors(), editing) : save.error ? { _: errorText(save.error) } : {}}
          onClose={() => { setEditing(null); save.reset(); }}
          onSave={(n) => save.mutate(editing < nets.length ? nets.map((x, k) => (k === editing ? n : x)) : [...nets, n])}
        />
      )}
    </Stack>
  );
}

/** The fields of one NIC; used by the container view and the create wizard. */
export function NicFields({ n, set, err }: { n: CTNet; set: (n: CTNet) => void; err: Record<string, string> }) {
  const txt = (k: keyof CTNet, label: string, desc?: string) => (
    <TextInput label={label} description={desc} value={String(n[k] ?? '')} onChange={(e) => set({ ...n, [k]: e.currentTarget.value })} error={err[k]} name={`nic-${k}`} />
  );
  return (
    <SimpleGrid cols={2}>
      {txt('name', 'Name')}
      {txt('bridge', 'Bridge')}
      {txt('ip', 'IPv4', 'dhcp or address/prefix')}
      {txt('gw', 'IPv4 gateway')}
      {txt('ip6', 'IPv6', 'auto, dhcp or address/prefix')}
      {txt('gw6', 'IPv6 gateway')}
      <NumberInput label="VLAN tag" value={n.tag ?? ''} onChange={(v) => set({ ...n, tag: v === '' ? undefined : Number(v) })} min={0} max={4094} allowDecimal={false} clampBehavior="none" error={err.tag} />
      <NumberInput label="Rate limit (MB/s)" value={n.rate ?? ''} onChange={(v) => set({ ...n, rate: v === '' ? undefined : Number(v) })} min={0} clampBehavior="none" error={err.rate} />
      <NumberInput label="MTU" value={n.mtu ?? ''} onChange={(v) => set({ ...n, mtu: v === '' ? undefined : Number(v) })} min={0} max={65520} allowDecimal={false} clampBehavior="none" error={err.mtu} />
      <Checkbox mt="lg" label="Firewall" checked={!!n.firewall} onChange={(e) => set({ ...n, firewall: e.currentTarget.checked })} />
    </SimpleGrid>
  );
}

function NicForm({ initial, saving, serverErrors, onClose, onSave }: {
  initial: CTNet; saving: boolean; serverErrors: Record<string, string>; onClose: () => void; onSave: (n: CTNet) => void;
}) {
  const [n, setN] = useState<CTNet>(initial);
  const [err, setErr] = useState<Record<string, string>>({});
  const shown = { ...serverErrors, ...err };
  return (
    <Modal opened onClose={onClose} title={`Network device ${initial.name}`} size="lg">
      <form onSubmit={(e) => { e.preventDefault(); const v = validateNic(n); setErr(v); if (!Object.keys(v).length) onSave(n); }}>
        <Stack>
          <NicFields n={n} set={(x) => { setN(x); setErr({}); }} err={shown} />
          {shown._ && <Text c="red" size="sm">{shown._}</Text>}
          <Group justify="flex-end"><Button variant="default" onClick={onClose}>Cancel</Button><Button type="submit" loading={saving}>Save</Button></Group>
        </Stack>
      </form>
    </Modal>
  );
}
