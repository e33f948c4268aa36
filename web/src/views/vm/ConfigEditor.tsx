// Hardware and options of a VM: one row per setting, the current value and,
// when a running VM holds a change for its next start, the pending value in
// orange. Editing a row sends just that field with the config's digest
// (If-Match), so a concurrent change is refused rather than overwritten.
import { useState } from 'react';
import { Badge, Button, Group, Modal, NumberInput, Select, Stack, Switch, Table, TagsInput, Text, Textarea, TextInput } from '@mantine/core';
import { useMutation, useQueryClient } from '@tanstack/react-query';
import { ApiError, errorText, request } from '../../api/client';
import { keys, usePermissions } from '../../api/queries';
import type { VM } from '../../api/types';
import { can } from '../../lib/perms';
import { pendingKeys, show, type ConfigKey } from './pending';

type Kind = 'number' | 'select' | 'text' | 'textarea' | 'bool' | 'tags' | 'readonly';
export interface Field {
  key: ConfigKey;
  label: string;
  kind: Kind;
  options?: string[];
  min?: number;
  max?: number;
  priv: string;
  decimal?: boolean; // a number that may have a fraction
  live?: boolean; // applies to a running guest at once (else pending until its next start)
}

/** What the editor needs of a guest: VMs and containers alike. */
export interface Editable {
  base: string; // API path, /vms/100 or /containers/101
  vmid: number;
  config: object;
  pending?: object | null;
  digest: string;
  status: string;
  queryKey: readonly unknown[];
}

export const vmEditable = (vm: VM): Editable => ({
  base: `/vms/${vm.config.vmid}`, vmid: vm.config.vmid, config: vm.config, pending: vm.pending, digest: vm.digest, status: vm.status, queryKey: keys.vm(vm.config.vmid),
});

// Limits mirror the server's schema (api/vm.go): same enums and ranges.
export const hardwareFields: Field[] = [
  { key: 'memory', label: 'Memory (MiB)', kind: 'number', min: 16, max: 4194304, priv: 'VM.Config.Memory' },
  { key: 'balloon', label: 'Balloon minimum (MiB, 0 = off)', kind: 'number', min: 0, max: 4194304, priv: 'VM.Config.Memory' },
  { key: 'sockets', label: 'CPU sockets', kind: 'number', min: 1, max: 4, priv: 'VM.Config.CPU' },
  { key: 'cores', label: 'Cores per socket', kind: 'number', min: 1, max: 128, priv: 'VM.Config.CPU' },
  { key: 'cpu', label: 'CPU type', kind: 'select', options: ['host', 'max', 'x86-64-v2', 'x86-64-v2-AES', 'x86-64-v3', 'qemu64', 'kvm64'], priv: 'VM.Config.CPU' },
  { key: 'machine', label: 'Machine', kind: 'select', options: ['q35', 'pc'], priv: 'VM.Config.HWType' },
  { key: 'bios', label: 'BIOS', kind: 'select', options: ['seabios', 'ovmf'], priv: 'VM.Config.HWType' },
  { key: 'vga', label: 'Display', kind: 'select', options: ['std', 'virtio', 'qxl', 'serial0', 'none'], priv: 'VM.Config.HWType' },
  { key: 'serial', label: 'Serial console', kind: 'bool', priv: 'VM.Config.HWType' },
  { key: 'nets', label: 'Network devices', kind: 'readonly', priv: 'VM.Config.Network' },
];

export const optionFields: Field[] = [
  { key: 'name', label: 'Name', kind: 'text', priv: 'VM.Config.Options' },
  { key: 'description', label: 'Notes', kind: 'textarea', priv: 'VM.Config.Options' },
  { key: 'tags', label: 'Tags', kind: 'tags', priv: 'VM.Config.Options' },
  { key: 'onboot', label: 'Start at boot', kind: 'bool', priv: 'VM.Config.Options' },
  { key: 'protection', label: 'Protection (refuse deletion)', kind: 'bool', priv: 'VM.Config.Options' },
  { key: 'boot', label: 'Boot order', kind: 'tags', priv: 'VM.Config.Options' },
];

/** Client-side check of one field, the same rules the server's schema has. */
export function validateField(f: Field, v: unknown): string | null {
  if (f.kind === 'number') {
    if (typeof v !== 'number' || Number.isNaN(v)) return 'a number is required';
    if (!f.decimal && !Number.isInteger(v)) return 'a whole number is required';
    if (f.min !== undefined && v < f.min) return `must be at least ${f.min}`;
    if (f.max !== undefined && v > f.max) return `must be at most ${f.max}`;
  }
  if (f.key === 'name' && typeof v === 'string' && v !== '') {
    if (v.length > 63) return 'at most 63 characters';
    if (!/^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$/.test(v)) return 'letters, digits, dots and hyphens; starts and ends with a letter or digit';
  }
  return null;
}

export function ConfigEditor({ guest, fields, title }: { guest: Editable; fields: Field[]; title: string }) {
  const perms = usePermissions();
  const id = guest.vmid;
  const pend = pendingKeys(guest.config, guest.pending);
  const [editing, setEditing] = useState<Field | null>(null);
  const qc = useQueryClient();
  const revert = useMutation({
    mutationFn: () => request('PUT', `${guest.base}/config`, { body: { revert: true } }),
    onSuccess: () => qc.invalidateQueries({ queryKey: guest.queryKey }),
  });
  const cfg = guest.config as Record<string, unknown>;
  const pcfg = guest.pending as Record<string, unknown> | null | undefined;
  const anyPending = fields.some((f) => pend.has(f.key));
  return (
    <Stack gap="xs">
      <Group justify="space-between">
        <Text fw={600}>{title}</Text>
        {anyPending && (
          <Group gap="xs">
            <Badge color="orange" variant="light">pending changes apply at the next start</Badge>
            <Button size="compact-xs" variant="default" onClick={() => revert.mutate()} loading={revert.isPending}>Revert pending</Button>
          </Group>
        )}
      </Group>
      <Table withTableBorder fz="sm" aria-label={title}>
        <Table.Tbody>
          {fields.map((f) => {
            const isPending = pend.has(f.key);
            const editable = f.kind !== 'readonly' && can(perms.data, `/vms/${id}`, f.priv);
            const disp = (v: unknown) => (f.kind === 'bool' ? (v ? 'yes' : 'no') : show(f.key, v)); // absent booleans are false
            return (
              <Table.Tr key={f.key} data-field={f.key} data-pending={isPending || undefined}>
                <Table.Td w={220} fw={500}>{f.label}</Table.Td>
                <Table.Td>
                  <span style={isPending ? { textDecoration: 'line-through', opacity: 0.7 } : undefined}>{disp(cfg[f.key])}</span>
                  {isPending && <span className="pending"> → {disp(pcfg?.[f.key])} (pending)</span>}
                </Table.Td>
                <Table.Td w={80} ta="right">
                  {editable && <Button size="compact-xs" variant="subtle" onClick={() => setEditing(f)} aria-label={`Edit ${f.label}`}>Edit</Button>}
                </Table.Td>
              </Table.Tr>
            );
          })}
        </Table.Tbody>
      </Table>
      {revert.error && <Text c="red" size="sm">{errorText(revert.error)}</Text>}
      {editing && <EditField guest={guest} field={editing} onClose={() => setEditing(null)} />}
    </Stack>
  );
}

function EditField({ guest, field, onClose }: { guest: Editable; field: Field; onClose: () => void }) {
  const base = (guest.pending ?? guest.config) as Record<string, unknown>;
  const [value, setValue] = useState<unknown>(base[field.key] ?? (field.kind === 'tags' ? [] : field.kind === 'bool' ? false : ''));
  const [err, setErr] = useState<string | null>(null);
  const qc = useQueryClient();
  const save = useMutation({
    mutationFn: () =>
      request('PUT', `${guest.base}/config`, { body: { [field.key]: value }, headers: { 'If-Match': guest.digest } }),
    onSuccess: () => {
      qc.invalidateQueries({ queryKey: guest.queryKey });
      qc.invalidateQueries({ queryKey: keys.resources });
      onClose();
    },
    onError: (e) => {
      if (e instanceof ApiError) {
        if (e.status === 412) setErr('The configuration changed meanwhile: close and try again.');
        else setErr(e.fieldErrors()[field.key] ?? errorText(e));
      } else setErr(String(e));
    },
  });
  const submit = () => {
    const v = validateField(field, value);
    setErr(v);
    if (!v) save.mutate();
  };
  const common = { label: field.label, error: err, 'data-autofocus': true } as const;
  let input;
  switch (field.kind) {
    case 'number':
      input = <NumberInput clampBehavior="none" {...common} value={value as number} onChange={(v) => setValue(typeof v === 'number' ? v : Number(v))} min={field.min} max={field.max} allowDecimal={!!field.decimal} />;
      break;
    case 'select':
      input = <Select {...common} data={field.options ?? []} value={String(value)} onChange={(v) => setValue(v)} allowDeselect={false} />;
      break;
    case 'bool':
      input = <Switch label={field.label} checked={!!value} onChange={(e) => setValue(e.currentTarget.checked)} error={err} />;
      break;
    case 'tags':
      input = <TagsInput {...common} value={(value as string[]) ?? []} onChange={setValue} />;
      break;
    case 'textarea':
      input = <Textarea {...common} value={String(value ?? '')} onChange={(e) => setValue(e.currentTarget.value)} autosize minRows={3} />;
      break;
    default:
      input = <TextInput {...common} value={String(value ?? '')} onChange={(e) => setValue(e.currentTarget.value)} />;
  }
  return (
    <Modal opened onClose={onClose} title={`Edit: ${field.label}`}>
      <form onSubmit={(e) => { e.preventDefault(); submit(); }}>
        <Stack>
          {input}
          {guest.status === 'running' && !field.live && (hardwareFields.includes(field) || field.priv !== 'VM.Config.Options') && (
            <Text size="xs" c="dimmed">It is running: this change applies at its next start.</Text>
          )}
          <Group justify="flex-end">
            <Button variant="default" onClick={onClose}>Cancel</Button>
            <Button type="submit" loading={save.isPending}>Save</Button>
          </Group>
        </Stack>
      </form>
    </Modal>
  );
}
