// A node's host interfaces: the configuration with its pending changes
// (the diff apply would make), what the host runs now, and apply/revert.
import { useState } from 'react';
import { Alert, Badge, Button, Checkbox, Group, Modal, Select, SimpleGrid, Stack, Table, TagsInput, Text, TextInput, NumberInput } from '@mantine/core';
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { ApiError, errorText, get, request } from '../../api/client';
import type { NodeNetwork as NodeNet } from '../../api/types';

type Iface = NodeNet['running'] extends (infer T)[] | null ? T : never;

export function NodeNetwork({ node, mayWrite }: { node: string; mayWrite: boolean }) {
  const base = `/nodes/${node}/network`;
  const key = ['network', 'node', node];
  const net = useQuery({ queryKey: key, queryFn: () => get<NodeNet>(base) });
  const qc = useQueryClient();
  const [editing, setEditing] = useState<Iface | 'new' | null>(null);
  const mut = useMutation({
    mutationFn: (op: { method: string; path?: string; body?: unknown }) =>
      request(op.method, base + (op.path ?? ''), { body: op.body, headers: net.data?.digest ? { 'If-Match': net.data.digest } : {} }),
    onSuccess: () => {
      qc.invalidateQueries({ queryKey: key });
      setEditing(null);
    },
  });
  if (net.isLoading) return null;
  if (net.error) return <Alert color="yellow">Network of {node}: {errorText(net.error)}</Alert>;
  const d = net.data!;
  const conf = d.pending ?? d.configured ?? [];
  const running = new Map((d.running ?? []).map((i) => [i.iface, i]));
  const changed = new Map((d.diff ?? []).map((c) => [c.iface, c]));
  return (
    <Stack gap="xs" data-testid="node-network">
      <Group justify="space-between">
        <Text fw={600}>Host interfaces</Text>
        {mayWrite && (
          <Group gap="xs">
            <Button size="xs" onClick={() => setEditing('new')} data-testid="net-create">Create</Button>
            <Button size="xs" color="orange" disabled={!d.pending} onClick={() => mut.mutate({ method: 'PUT', body: {} })} data-testid="net-apply">Apply configuration</Button>
            <Button size="xs" variant="default" disabled={!d.pending} onClick={() => mut.mutate({ method: 'DELETE' })} data-testid="net-revert">Revert</Button>
          </Group>
        )}
      </Group>
      {d.diff && d.diff.length > 0 && (
        <Alert color="orange" title="Pending changes (apply makes them running)" data-testid="net-diff">
          {d.diff.map((c) => (
            <Text key={c.iface + c.action} size="sm" ff="monospace">{c.action === 'add' ? '+' : c.action === 'delete' ? '−' : '~'} {c.iface}{c.detail ? `: ${c.detail}` : ''}</Text>
          ))}
        </Alert>
      )}
      {mut.error && editing === null && <Alert color="red">{errorText(mut.error)}</Alert>}
      <Table withTableBorder fz="sm" aria-label="Host interfaces">
        <Table.Thead>
          <Table.Tr><Table.Th>Name</Table.Th><Table.Th>Type</Table.Th><Table.Th>Active</Table.Th><Table.Th>Addresses</Table.Th><Table.Th>Ports / slaves</Table.Th><Table.Th>MTU</Table.Th><Table.Th>Comment</Table.Th><Table.Th /></Table.Tr>
        </Table.Thead>
        <Table.Tbody>
          {conf.map((i) => {
            const c = changed.get(i.iface);
            return (
              <Table.Tr key={i.iface} data-iface={i.iface}>
                <Table.Td>{i.iface} {c && <Badge size="xs" color="orange" variant="light">{c.action}</Badge>}</Table.Td>
                <Table.Td>{i.type}</Table.Td>
                <Table.Td>{running.get(i.iface)?.up ? 'yes' : 'no'}</Table.Td>
                <Table.Td>{(i.addresses ?? []).join(', ') || '—'}{i.gateway ? ` via ${i.gateway}` : ''}</Table.Td>
                <Table.Td>{(i.bridge_ports ?? i.slaves ?? []).join(', ') || (i.vni ? `VNI ${i.vni}` : '—')}</Table.Td>
                <Table.Td>{i.mtu || '—'}</Table.Td>
                <Table.Td>{i.comment}</Table.Td>
                <Table.Td>
                  {mayWrite && (
                    <Group gap={4} justify="flex-end" wrap="nowrap">
                      <Button size="compact-xs" variant="subtle" onClick={() => setEditing(i)}>Edit</Button>
                      {i.type !== 'eth' && <Button size="compact-xs" variant="subtle" color="red" onClick={() => mut.mutate({ method: 'DELETE', path: `/${encodeURIComponent(i.iface)}` })}>Delete</Button>}
                    </Group>
                  )}
                </Table.Td>
              </Table.Tr>
            );
          })}
          {[...changed.values()].filter((c) => c.action === 'delete').map((c) => (
            <Table.Tr key={`del-${c.iface}`} style={{ textDecoration: 'line-through', opacity: 0.6 }}>
              <Table.Td>{c.iface} <Badge size="xs" color="orange" variant="light">delete</Badge></Table.Td>
              <Table.Td colSpan={7}>{c.detail}</Table.Td>
            </Table.Tr>
          ))}
        </Table.Tbody>
      </Table>
      {editing !== null && (
        <IfaceForm
          initial={editing === 'new' ? { iface: '', type: 'bridge' } : editing}
          isNew={editing === 'new'}
          caps={d.caps}
          saving={mut.isPending}
          error={mut.error}
          onClose={() => { setEditing(null); mut.reset(); }}
          onSave={(i) => mut.mutate(editing === 'new' ? { method: 'POST', body: i } : { method: 'PUT', path: `/${encodeURIComponent(i.iface)}`, body: i })}
        />
      )}
    </Stack>
  );
}

function IfaceForm({ initial, isNew, caps, saving, error, onClose, onSave }: {
  initial: Iface; isNew: boolean; caps: NodeNet['caps']; saving: boolean; error: unknown; onClose: () => void; onSave: (i: Iface) => void;
}) {
  const [i, setI] = useState<Iface>(initial);
  const fe = error instanceof ApiError ? error.fieldErrors() : {};
  const types = [{ value: 'bridge', label: 'Linux bridge', disabled: !caps.bridge }, { value: 'vxlan', label: 'VXLAN', disabled: !caps.vxlan }, { value: 'bond', label: 'Bond', disabled: !caps.bond }, { value: 'vlan', label: 'VLAN', disabled: !caps.vlan }];
  return (
    <Modal opened onClose={onClose} title={isNew ? 'Create interface' : `Interface ${initial.iface}`} size="lg">
      <form onSubmit={(e) => { e.preventDefault(); onSave(i); }}>
        <Stack>
          <SimpleGrid cols={2}>
            <TextInput label="Name" value={i.iface} disabled={!isNew} onChange={(e) => setI({ ...i, iface: e.currentTarget.value })} error={fe.iface} />
            <Select label="Type" data={isNew ? types : [i.type]} value={i.type} disabled={!isNew} onChange={(v) => v && setI({ ...i, type: v as Iface['type'] })} allowDeselect={false} error={fe.type} />
            <TagsInput label="Addresses (CIDR)" value={i.addresses ?? []} onChange={(v) => setI({ ...i, addresses: v })} error={fe.addresses} />
            <TextInput label="Gateway" value={i.gateway ?? ''} onChange={(e) => setI({ ...i, gateway: e.currentTarget.value })} error={fe.gateway} />
            {i.type === 'bridge' && <TagsInput label="Bridge ports" value={i.bridge_ports ?? []} onChange={(v) => setI({ ...i, bridge_ports: v })} error={fe.bridge_ports} />}
            {i.type === 'vxlan' && <NumberInput label="VNI" value={i.vni ?? ''} onChange={(v) => setI({ ...i, vni: Number(v) || undefined })} error={fe.vni} />}
            {i.type === 'vxlan' && <TagsInput label="Remotes" value={i.remotes ?? []} onChange={(v) => setI({ ...i, remotes: v })} error={fe.remotes} />}
            <NumberInput label="MTU" value={i.mtu ?? ''} onChange={(v) => setI({ ...i, mtu: Number(v) || undefined })} error={fe.mtu} />
            <TextInput label="Comment" value={i.comment ?? ''} onChange={(e) => setI({ ...i, comment: e.currentTarget.value })} error={fe.comment} />
          </SimpleGrid>
          {i.type === 'bridge' && <Checkbox label="Spanning tree (STP)" checked={!!i.stp} onChange={(e) => setI({ ...i, stp: e.currentTarget.checked })} />}
          <Text size="xs" c="dimmed">Changes are pending until "Apply configuration".</Text>
          {error != null && Object.keys(fe).length === 0 && <Text c="red" size="sm">{errorText(error)}</Text>}
          <Group justify="flex-end"><Button variant="default" onClick={onClose}>Cancel</Button><Button type="submit" loading={saving}>Save</Button></Group>
        </Stack>
      </form>
    </Modal>
  );
}
