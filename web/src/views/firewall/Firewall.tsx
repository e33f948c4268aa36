// The firewall of one level (datacenter, node, VM or container): its
// switch and default policies, and its ordered rules. Every change sends
// the digest it was based on (If-Match); the server refuses a rule that
// doesn't compile, with the reason on its field.
import { useState } from 'react';
import { Alert, Badge, Button, Checkbox, Group, Modal, Select, SimpleGrid, Stack, Switch, Table, Text, TextInput } from '@mantine/core';
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { ApiError, errorText, get, request } from '../../api/client';
import type { FwOptions, FwRule } from '../../api/types';
import { KindTable, type Kind } from '../network/SDN';
import { emptyRule, ruleText, validateRule } from './rule';

/** The datacenter's named addresses, for rules' source and destination (+ipset, alias). */
export const fwObjects: Kind[] = [
  { title: 'IP sets', path: '/cluster/firewall/ipset', id: 'name', fields: [{ key: 'name', label: 'Name', fixed: true }, { key: 'cidrs', label: 'Addresses / CIDRs', kind: 'tags' }, { key: 'comment', label: 'Comment' }] },
  { title: 'Aliases', path: '/cluster/firewall/aliases', id: 'name', fields: [{ key: 'name', label: 'Name', fixed: true }, { key: 'cidr', label: 'Address / CIDR' }, { key: 'comment', label: 'Comment' }] },
];

/** The datacenter's firewall: its rules, IP sets and aliases. */
export function ClusterFirewall({ mayWrite }: { mayWrite: boolean }) {
  return (
    <Stack>
      <Firewall base="/cluster/firewall" mayWrite={mayWrite} />
      {fwObjects.map((k) => <KindTable key={k.path} kind={k} mayWrite={mayWrite} />)}
    </Stack>
  );
}

type FwRules = { options: FwOptions; rules: FwRule[] | null; digest?: string };

export function Firewall({ base, mayWrite, guest }: { base: string; mayWrite: boolean; guest?: boolean }) {
  const key = ['firewall', base];
  const fw = useQuery({ queryKey: key, queryFn: () => get<FwRules>(base) });
  const qc = useQueryClient();
  const [editing, setEditing] = useState<number | null>(null);
  const mut = useMutation({
    mutationFn: (op: { method: string; path: string; body?: unknown }) =>
      request(op.method, base + op.path, { body: op.body, headers: fw.data?.digest ? { 'If-Match': fw.data.digest } : {} }),
    onSuccess: () => {
      qc.invalidateQueries({ queryKey: key });
      setEditing(null);
    },
  });
  if (fw.isLoading) return null;
  if (fw.error) return <Alert color="yellow">Firewall: {errorText(fw.error)}</Alert>;
  const o = fw.data!.options;
  const rules = fw.data!.rules ?? [];
  const setOpt = (patch: Partial<FwOptions>) => mut.mutate({ method: 'PUT', path: '/options', body: { ...o, ...patch } });
  const policies = [{ value: '', label: 'default' }, 'ACCEPT', 'DROP', 'REJECT'];
  return (
    <Stack gap="xs" data-testid="firewall">
      <Group justify="space-between">
        <Group gap="md">
          <Switch label="Firewall enabled" checked={o.enable} disabled={!mayWrite} onChange={(e) => setOpt({ enable: e.currentTarget.checked })} data-testid="fw-enable" />
          <Select size="xs" w={130} label="Policy in" data={policies} value={o.policy_in ?? ''} disabled={!mayWrite} onChange={(v) => setOpt({ policy_in: (v ?? '') as FwOptions['policy_in'] })} allowDeselect={false} />
          <Select size="xs" w={130} label="Policy out" data={policies} value={o.policy_out ?? ''} disabled={!mayWrite} onChange={(v) => setOpt({ policy_out: (v ?? '') as FwOptions['policy_out'] })} allowDeselect={false} />
          {guest && <Switch label="MAC/IP anti-spoofing" checked={o.macfilter ?? true} disabled={!mayWrite} onChange={(e) => setOpt({ macfilter: e.currentTarget.checked })} />}
        </Group>
        {mayWrite && <Button size="xs" onClick={() => setEditing(rules.length)} data-testid="fw-add">Add rule</Button>}
      </Group>
      <Table withTableBorder fz="sm" aria-label="Firewall rules">
        <Table.Thead>
          <Table.Tr><Table.Th>#</Table.Th><Table.Th>On</Table.Th><Table.Th>Direction</Table.Th><Table.Th>Action</Table.Th><Table.Th>Protocol</Table.Th><Table.Th>Port</Table.Th><Table.Th>Source</Table.Th><Table.Th>Destination</Table.Th><Table.Th>Comment</Table.Th><Table.Th /></Table.Tr>
        </Table.Thead>
        <Table.Tbody>
          {rules.map((r, i) => (
            <Table.Tr key={i} data-rule={i} style={r.enable ? undefined : { opacity: 0.55 }} title={ruleText(r)}>
              <Table.Td>{i}</Table.Td>
              <Table.Td>{r.enable ? 'yes' : 'no'}</Table.Td>
              <Table.Td>{r.type}</Table.Td>
              <Table.Td>{r.group ? <Badge variant="light">group {r.group}</Badge> : r.action}</Table.Td>
              <Table.Td>{r.proto || '—'}</Table.Td>
              <Table.Td>{r.dport || '—'}</Table.Td>
              <Table.Td>{r.source || '—'}</Table.Td>
              <Table.Td>{r.dest || '—'}</Table.Td>
              <Table.Td>{r.comment}</Table.Td>
              <Table.Td>
                {mayWrite && (
                  <Group gap={4} justify="flex-end" wrap="nowrap">
                    <Button size="compact-xs" variant="subtle" onClick={() => setEditing(i)}>Edit</Button>
                    <Button size="compact-xs" variant="subtle" color="red" onClick={() => mut.mutate({ method: 'DELETE', path: `/rules/${i}` })}>Delete</Button>
                  </Group>
                )}
              </Table.Td>
            </Table.Tr>
          ))}
          {rules.length === 0 && <Table.Tr><Table.Td colSpan={10}><Text size="sm" c="dimmed">No rules</Text></Table.Td></Table.Tr>}
        </Table.Tbody>
      </Table>
      {mut.error && editing === null && <Text c="red" size="sm">{errorText(mut.error)}</Text>}
      {editing !== null && (
        <RuleForm
          initial={rules[editing] ?? emptyRule}
          title={editing < rules.length ? `Rule ${editing}` : 'Add rule'}
          saving={mut.isPending}
          error={mut.error}
          onClose={() => { setEditing(null); mut.reset(); }}
          onSave={(r) => mut.mutate(editing < rules.length ? { method: 'PUT', path: `/rules/${editing}`, body: r } : { method: 'POST', path: '/rules', body: r })}
        />
      )}
    </Stack>
  );
}

function RuleForm({ initial, title, saving, error, onClose, onSave }: {
  initial: FwRule; title: string; saving: boolean; error: unknown; onClose: () => void; onSave: (r: FwRule) => void;
}) {
  const [r, setR] = useState<FwRule>(initial);
  const [err, setErr] = useState<Record<string, string>>({});
  const server = error instanceof ApiError ? error.fieldErrors() : {};
  const e = (k: string) => err[k] ?? server[k];
  const txt = (k: keyof FwRule, label: string, desc?: string) => (
    <TextInput label={label} description={desc} value={String(r[k] ?? '')} onChange={(ev) => { setR({ ...r, [k]: ev.currentTarget.value }); setErr({}); }} error={e(k)} />
  );
  return (
    <Modal opened onClose={onClose} title={title} size="lg">
      <form onSubmit={(ev) => { ev.preventDefault(); const v = validateRule(r); setErr(v); if (!Object.keys(v).length) onSave(r); }}>
        <Stack>
          <SimpleGrid cols={2}>
            <Select label="Direction" data={['in', 'out']} value={r.type} onChange={(v) => v && setR({ ...r, type: v as FwRule['type'] })} allowDeselect={false} />
            <Select label="Action" data={['ACCEPT', 'DROP', 'REJECT']} value={r.action} onChange={(v) => v && setR({ ...r, action: v as FwRule['action'] })} allowDeselect={false} error={e('action')} />
            <Select label="Protocol" data={[{ value: '', label: 'any' }, 'tcp', 'udp', 'icmp', 'icmpv6', 'sctp']} value={r.proto ?? ''} onChange={(v) => { setR({ ...r, proto: (v ?? '') as FwRule['proto'] }); setErr({}); }} allowDeselect={false} error={e('proto')} />
            {txt('dport', 'Destination port', '22, 8000:8080 or 80,443')}
            {txt('source', 'Source', 'addresses/CIDRs, +ipset or alias')}
            {txt('dest', 'Destination')}
            {txt('sport', 'Source port')}
            {txt('iface', 'Interface')}
            {txt('group', 'Security group', 'include a group instead')}
            {txt('comment', 'Comment')}
          </SimpleGrid>
          <Checkbox label="Enabled" checked={r.enable} onChange={(ev) => setR({ ...r, enable: ev.currentTarget.checked })} />
          {error != null && !(error instanceof ApiError && Object.keys(server).length) && <Text c="red" size="sm">{errorText(error)}</Text>}
          <Group justify="flex-end"><Button variant="default" onClick={onClose}>Cancel</Button><Button type="submit" loading={saving}>Save</Button></Group>
        </Stack>
      </form>
    </Modal>
  );
}
