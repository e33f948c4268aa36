// Cluster networks: zones (simple, vxlan), their vnets (what guests attach
// to like a bridge) and subnets (gateway, SNAT, DHCP range). One table per
// kind, each row editable in a form built from its field list.
import { useState } from 'react';
import { Button, Checkbox, Group, Modal, NumberInput, Select, SimpleGrid, Stack, Table, TagsInput, Text, TextInput, Alert } from '@mantine/core';
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { ApiError, errorText, get, request } from '../../api/client';

type Obj = Record<string, unknown> & { digest?: string };
interface Field {
  key: string;
  label: string;
  kind?: 'text' | 'number' | 'select' | 'tags' | 'bool';
  options?: string[];
  fixed?: boolean; // the object's name: set at creation only
}

export interface Kind {
  title: string;
  path: string;
  id: string; // the key naming an object
  fields: Field[];
}

export const sdnKinds: Kind[] = [
  {
    title: 'Zones', path: '/cluster/zones', id: 'zone', fields: [
      { key: 'zone', label: 'Zone', fixed: true }, { key: 'type', label: 'Type', kind: 'select', options: ['simple', 'vxlan'], fixed: true },
      { key: 'peers', label: 'Peers (vxlan)', kind: 'tags' }, { key: 'mtu', label: 'MTU', kind: 'number' }, { key: 'nodes', label: 'Nodes', kind: 'tags' },
    ],
  },
  {
    title: 'VNets', path: '/cluster/vnets', id: 'vnet', fields: [
      { key: 'vnet', label: 'VNet', fixed: true }, { key: 'zone', label: 'Zone' }, { key: 'tag', label: 'Tag / VNI', kind: 'number' },
    ],
  },
  {
    title: 'Subnets', path: '/cluster/subnets', id: 'subnet', fields: [
      { key: 'subnet', label: 'Subnet (CIDR)', fixed: true }, { key: 'vnet', label: 'VNet' }, { key: 'gateway', label: 'Gateway' },
      { key: 'snat', label: 'SNAT', kind: 'bool' }, { key: 'dhcp_start', label: 'DHCP start' }, { key: 'dhcp_end', label: 'DHCP end' },
    ],
  },
];

/** An object's name in a URL: a subnet's CIDR with - for / (10.0.0.0-24). */
export const objPath = (name: string) => name.replace('/', '-');

/** Display text of a field's value. */
export function cell(v: unknown): string {
  if (v === undefined || v === null || v === '' || v === 0) return '—';
  if (typeof v === 'boolean') return v ? 'yes' : 'no';
  if (Array.isArray(v)) return v.length ? v.join(', ') : '—';
  return String(v);
}

export function SDN({ mayWrite }: { mayWrite: boolean }) {
  return (
    <Stack>
      {sdnKinds.map((k) => <KindTable key={k.path} kind={k} mayWrite={mayWrite} />)}
      <Text size="xs" c="dimmed">Guests attach to a vnet by naming it as their NIC's bridge.</Text>
    </Stack>
  );
}

/** A list of named cluster objects with add, edit and delete. */
export function KindTable({ kind, mayWrite }: { kind: Kind; mayWrite: boolean }) {
  const key = [kind.path.includes('firewall') ? 'firewall' : 'network', kind.path];
  const list = useQuery({ queryKey: key, queryFn: () => get<Obj[]>(kind.path) });
  const qc = useQueryClient();
  const [editing, setEditing] = useState<Obj | 'new' | null>(null);
  const mut = useMutation({
    mutationFn: (op: { method: string; name?: string; body?: unknown; digest?: string }) =>
      request(op.method, kind.path + (op.name ? `/${encodeURIComponent(objPath(op.name))}` : ''), { body: op.body, headers: op.digest ? { 'If-Match': op.digest } : {} }),
    onSuccess: () => {
      qc.invalidateQueries({ queryKey: [key[0]] });
      setEditing(null);
    },
  });
  return (
    <Stack gap="xs">
      <Group justify="space-between">
        <Text fw={600}>{kind.title}</Text>
        {mayWrite && <Button size="xs" onClick={() => setEditing('new')} data-testid={`add-${kind.path.split('/').pop()}`}>Add</Button>}
      </Group>
      {list.error ? <Alert color="yellow">{errorText(list.error)}</Alert> : (
        <Table withTableBorder fz="sm" aria-label={kind.title}>
          <Table.Thead><Table.Tr>{kind.fields.map((f) => <Table.Th key={f.key}>{f.label}</Table.Th>)}<Table.Th /></Table.Tr></Table.Thead>
          <Table.Tbody>
            {(list.data ?? []).map((o) => (
              <Table.Tr key={String(o[kind.id])}>
                {kind.fields.map((f) => <Table.Td key={f.key}>{cell(o[f.key])}</Table.Td>)}
                <Table.Td>
                  {mayWrite && (
                    <Group gap={4} justify="flex-end" wrap="nowrap">
                      <Button size="compact-xs" variant="subtle" onClick={() => setEditing(o)}>Edit</Button>
                      <Button size="compact-xs" variant="subtle" color="red" onClick={() => mut.mutate({ method: 'DELETE', name: String(o[kind.id]), digest: o.digest })}>Delete</Button>
                    </Group>
                  )}
                </Table.Td>
              </Table.Tr>
            ))}
            {list.data?.length === 0 && <Table.Tr><Table.Td colSpan={kind.fields.length + 1}><Text size="sm" c="dimmed">None</Text></Table.Td></Table.Tr>}
          </Table.Tbody>
        </Table>
      )}
      {mut.error && editing === null && <Text c="red" size="sm">{errorText(mut.error)}</Text>}
      {editing !== null && (
        <ObjForm
          kind={kind}
          initial={editing === 'new' ? {} : editing}
          isNew={editing === 'new'}
          saving={mut.isPending}
          error={mut.error}
          onClose={() => { setEditing(null); mut.reset(); }}
          onSave={(o) => mut.mutate(editing === 'new' ? { method: 'POST', body: o } : { method: 'PUT', name: String(o[kind.id]), body: o, digest: (editing as Obj).digest })}
        />
      )}
    </Stack>
  );
}

function ObjForm({ kind, initial, isNew, saving, error, onClose, onSave }: {
  kind: Kind; initial: Obj; isNew: boolean; saving: boolean; error: unknown; onClose: () => void; onSave: (o: Obj) => void;
}) {
  const { digest: _, ...start } = initial;
  const [o, setO] = useState<Obj>(start);
  const fe = error instanceof ApiError ? error.fieldErrors() : {};
  const set = (k: string, v: unknown) => setO({ ...o, [k]: v });
  return (
    <Modal opened onClose={onClose} title={`${kind.title}: ${isNew ? 'add' : `edit ${String(initial[kind.id])}`}`}>
      <form onSubmit={(e) => { e.preventDefault(); onSave(o); }}>
        <Stack>
          <SimpleGrid cols={2}>
            {kind.fields.map((f) => {
              const common = { label: f.label, error: fe[f.key], disabled: f.fixed && !isNew };
              switch (f.kind) {
                case 'number': return <NumberInput key={f.key} {...common} value={(o[f.key] as number) ?? ''} onChange={(v) => set(f.key, v === '' ? undefined : Number(v))} allowDecimal={false} />;
                case 'select': return <Select key={f.key} {...common} data={f.options ?? []} value={(o[f.key] as string) ?? null} onChange={(v) => set(f.key, v ?? undefined)} />;
                case 'tags': return <TagsInput key={f.key} {...common} value={(o[f.key] as string[]) ?? []} onChange={(v) => set(f.key, v)} />;
                case 'bool': return <Checkbox key={f.key} mt="lg" label={f.label} checked={!!o[f.key]} onChange={(e) => set(f.key, e.currentTarget.checked)} />;
                default: return <TextInput key={f.key} {...common} value={(o[f.key] as string) ?? ''} onChange={(e) => set(f.key, e.currentTarget.value)} />;
              }
            })}
          </SimpleGrid>
          {error != null && Object.keys(fe).length === 0 && <Text c="red" size="sm">{errorText(error)}</Text>}
          <Group justify="flex-end"><Button variant="default" onClick={onClose}>Cancel</Button><Button type="submit" loading={saving}>Save</Button></Group>
        </Stack>
      </form>
    </Modal>
  );
}
