// Cloud-init settings of a VM (given to the guest as a NoCloud seed CD-ROM
// at its next start). Passwords are never sent in clear: the form takes a
// crypt(3) hash, as the API stores only that.
import { useState } from 'react';
import { Button, Group, Modal, Stack, Table, TagsInput, Text, Textarea, TextInput } from '@mantine/core';
import { useMutation, useQueryClient } from '@tanstack/react-query';
import { ApiError, errorText, request } from '../../api/client';
import { keys, usePermissions } from '../../api/queries';
import type { VM } from '../../api/types';
import type { components } from '../../api/schema';
import { can } from '../../lib/perms';

type CI = components['schemas']['VMCloudInit'];

/** Client-side checks mirroring the API schema of VMCloudInit. */
export function validateCloudInit(c: CI): Record<string, string> {
  const e: Record<string, string> = {};
  if (c.user && !/^[a-z_][a-z0-9_-]*$/.test(c.user)) e.user = 'lower-case letters, digits, _ and -';
  if (c.password_hash && !/^\$(1|5|6|y|2[aby])\$[./A-Za-z0-9$]+$/.test(c.password_hash)) e.password_hash = 'a crypt(3) hash, e.g. from mkpasswd -m sha-512';
  if (c.ip && c.ip !== 'dhcp' && !/^[0-9a-fA-F.:]+\/\d{1,3}$/.test(c.ip)) e.ip = '"dhcp" or an address in CIDR form (10.0.0.5/24)';
  if ((c.nameserver ?? []).length > 3) e.nameserver = 'at most 3';
  if ((c.ssh_keys ?? []).length > 32) e.ssh_keys = 'at most 32 keys';
  if (c.searchdomain && !/^[A-Za-z0-9.-]+$/.test(c.searchdomain)) e.searchdomain = 'a domain name';
  return e;
}

export function CloudInit({ vm }: { vm: VM }) {
  const perms = usePermissions();
  const may = can(perms.data, `/vms/${vm.config.vmid}`, 'VM.Config.Cloudinit');
  const ci = (vm.pending ?? vm.config).cloudinit;
  const [open, setOpen] = useState(false);
  const rows: [string, string][] = ci
    ? [
        ['User', ci.user || '—'],
        ['Password', ci.password_hash ? 'set (hash)' : '—'],
        ['SSH keys', `${(ci.ssh_keys ?? []).length}`],
        ['IP', ci.ip || '—'],
        ['Gateway', ci.gw || '—'],
        ['DNS', [...(ci.nameserver ?? []), ci.searchdomain].filter(Boolean).join(', ') || '—'],
      ]
    : [];
  return (
    <Stack gap="xs">
      <Group justify="space-between">
        <Text fw={600}>Cloud-init</Text>
        {may && <Button size="compact-xs" variant="default" onClick={() => setOpen(true)}>Edit</Button>}
      </Group>
      {ci ? (
        <Table withTableBorder fz="sm" aria-label="Cloud-init">
          <Table.Tbody>
            {rows.map(([k, v]) => (
              <Table.Tr key={k}><Table.Td w={220} fw={500}>{k}</Table.Td><Table.Td>{v}</Table.Td></Table.Tr>
            ))}
          </Table.Tbody>
        </Table>
      ) : (
        <Text size="sm" c="dimmed">Not configured.</Text>
      )}
      {open && <CloudInitModal vm={vm} onClose={() => setOpen(false)} />}
    </Stack>
  );
}

function CloudInitModal({ vm, onClose }: { vm: VM; onClose: () => void }) {
  const cur = (vm.pending ?? vm.config).cloudinit ?? {};
  const [c, setC] = useState<CI>({ ...cur, ssh_keys: cur.ssh_keys ?? [], nameserver: cur.nameserver ?? [] });
  const [errs, setErrs] = useState<Record<string, string>>({});
  const qc = useQueryClient();
  const save = useMutation({
    mutationFn: (body: CI) => request('PUT', `/vms/${vm.config.vmid}/config`, { body: { cloudinit: body }, headers: { 'If-Match': vm.digest } }),
    onSuccess: () => {
      qc.invalidateQueries({ queryKey: keys.vm(vm.config.vmid) });
      onClose();
    },
    onError: (e) => {
      if (e instanceof ApiError) {
        const fe: Record<string, string> = {};
        for (const [k, m] of Object.entries(e.fieldErrors())) fe[k.replace(/^cloudinit\./, '').replace(/\[\d+\]$/, '')] = m;
        setErrs(Object.keys(fe).length ? fe : { _: errorText(e) });
      } else setErrs({ _: String(e) });
    },
  });
  const submit = () => {
    const e = validateCloudInit(c);
    setErrs(e);
    if (Object.keys(e).length === 0) save.mutate(c);
  };
  const text = (k: 'user' | 'password_hash' | 'ip' | 'gw' | 'searchdomain', label: string, description?: string) => (
    <TextInput label={label} description={description} value={c[k] ?? ''} onChange={(e) => setC({ ...c, [k]: e.currentTarget.value })} error={errs[k]} />
  );
  return (
    <Modal opened onClose={onClose} title="Cloud-init" size="lg">
      <form onSubmit={(e) => { e.preventDefault(); submit(); }}>
        <Stack>
          {text('user', 'User')}
          {text('password_hash', 'Password hash', 'crypt(3) hash, e.g. from: mkpasswd -m sha-512')}
          <Textarea
            label="SSH public keys"
            description="one per line"
            autosize
            minRows={2}
            value={(c.ssh_keys ?? []).join('\n')}
            onChange={(e) => setC({ ...c, ssh_keys: e.currentTarget.value.split('\n').map((x) => x.trim()).filter(Boolean) })}
            error={errs.ssh_keys}
          />
          {text('ip', 'IP address', 'dhcp, or CIDR like 10.0.0.5/24')}
          {text('gw', 'Gateway')}
          <TagsInput label="Name servers" value={c.nameserver ?? []} onChange={(v) => setC({ ...c, nameserver: v })} error={errs.nameserver} maxTags={3} />
          {text('searchdomain', 'Search domain')}
          {errs._ && <Text c="red" size="sm">{errs._}</Text>}
          <Group justify="space-between">
            <Button variant="subtle" color="red" onClick={() => save.mutate({})}>Remove cloud-init</Button>
            <Group><Button variant="default" onClick={onClose}>Cancel</Button><Button type="submit" loading={save.isPending}>Save</Button></Group>
          </Group>
        </Stack>
      </form>
    </Modal>
  );
}
