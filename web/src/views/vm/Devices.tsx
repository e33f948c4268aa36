// Disks and CD-ROM drives of a VM: resize a disk (a task, live when the VM
// runs), change or eject the CD-ROM media.
import { useMemo, useState } from 'react';
import { Button, Checkbox, Group, Modal, Select, Stack, Table, Text, TextInput } from '@mantine/core';
import { useMutation, useQueryClient } from '@tanstack/react-query';
import { ApiError, del, errorText, post, request } from '../../api/client';
import { keys, useContent, useNodeStorage, usePermissions } from '../../api/queries';
import type { VM } from '../../api/types';
import { can } from '../../lib/perms';
import { useTaskAction } from '../../lib/useTask';
import { show } from './pending';

export const resizeRe = /^\+?[0-9]+[KMGT]?$/;

export function Devices({ vm }: { vm: VM }) {
  const perms = usePermissions();
  const id = vm.config.vmid;
  const cfg = vm.pending ?? vm.config;
  const mayDisk = can(perms.data, `/vms/${id}`, 'VM.Config.Disk');
  const mayCD = can(perms.data, `/vms/${id}`, 'VM.Config.CDROM');
  const [resizing, setResizing] = useState<number | null>(null);
  const [cd, setCD] = useState<number | null>(null);
  const [adding, setAdding] = useState(false);
  const [detaching, setDetaching] = useState<number | null>(null);
  return (
    <Stack gap="xs">
      <Group justify="space-between">
        <Text fw={600}>Disks and drives</Text>
        {mayDisk && <Button size="compact-xs" variant="default" onClick={() => setAdding(true)}>Add disk</Button>}
      </Group>
      <Table withTableBorder fz="sm" aria-label="Devices">
        <Table.Tbody>
          {(vm.config.disks ?? []).map((d, i) => (
            <Table.Tr key={`disk${i}`} data-device={`disk${i}`}>
              <Table.Td w={220} fw={500}>disk{i}</Table.Td>
              <Table.Td>{show('disks', [d])}</Table.Td>
              <Table.Td w={150} ta="right">
                {mayDisk && (
                  <Group gap={4} justify="flex-end" wrap="nowrap">
                    <Button size="compact-xs" variant="subtle" onClick={() => setResizing(i)}>Resize</Button>
                    <Button size="compact-xs" variant="subtle" color="red" onClick={() => setDetaching(i)}>Detach</Button>
                  </Group>
                )}
              </Table.Td>
            </Table.Tr>
          ))}
          {(cfg.cdroms ?? []).map((c, i) => {
            const now = vm.config.cdroms?.[i]?.volume;
            const pending = !!vm.pending && now !== c.volume;
            return (
            <Table.Tr key={`cdrom${i}`} data-device={`cdrom${i}`} data-pending={pending || undefined}>
              <Table.Td w={220} fw={500}>cdrom{i}</Table.Td>
              <Table.Td>
                {pending ? (
                  <>
                    <span style={{ textDecoration: 'line-through', opacity: 0.7 }}>{now || 'empty'}</span>
                    <span className="pending"> → {c.volume || 'empty'} (pending)</span>
                  </>
                ) : (
                  c.volume || 'empty'
                )}
              </Table.Td>
              <Table.Td w={90} ta="right">{mayCD && <Button size="compact-xs" variant="subtle" onClick={() => setCD(i)}>Media</Button>}</Table.Td>
            </Table.Tr>
            );
          })}
        </Table.Tbody>
      </Table>
      {resizing !== null && <ResizeModal vm={vm} disk={resizing} onClose={() => setResizing(null)} />}
      {cd !== null && <CDModal vm={vm} index={cd} onClose={() => setCD(null)} />}
      {adding && <AddDiskModal vm={vm} onClose={() => setAdding(false)} />}
      {detaching !== null && <DetachModal vm={vm} disk={detaching} onClose={() => setDetaching(null)} />}
    </Stack>
  );
}

function ResizeModal({ vm, disk, onClose }: { vm: VM; disk: number; onClose: () => void }) {
  const id = vm.config.vmid;
  const [size, setSize] = useState('+1G');
  const [err, setErr] = useState('');
  const resize = useTaskAction(() => `resize disk${disk} of VM ${id}`, () => post(`/vms/${id}/disks/${disk}/resize`, { size }), [keys.vm(id)]);
  const submit = () => {
    if (!resizeRe.test(size)) return setErr('a size like +1G (grow by) or 20G (new size)');
    resize.mutate(undefined, { onSuccess: onClose, onError: (e) => setErr(e instanceof ApiError ? e.fieldErrors().size ?? errorText(e) : String(e)) });
  };
  return (
    <Modal opened onClose={onClose} title={`Resize disk${disk}`}>
      <form onSubmit={(e) => { e.preventDefault(); submit(); }}>
        <Stack>
          <TextInput label="Size" description="+1G grows by 1 GiB; 20G sets the new size (disks only grow)" value={size} onChange={(e) => setSize(e.currentTarget.value)} error={err || undefined} data-autofocus />
          <Group justify="flex-end"><Button variant="default" onClick={onClose}>Cancel</Button><Button type="submit" loading={resize.isPending}>Resize</Button></Group>
        </Stack>
      </form>
    </Modal>
  );
}

function CDModal({ vm, index, onClose }: { vm: VM; index: number; onClose: () => void }) {
  const id = vm.config.vmid;
  const pools = useNodeStorage(vm.config.node);
  const isoPools = useMemo(() => (pools.data ?? []).filter((p) => p.active && p.content?.includes('iso')), [pools.data]);
  const [pool, setPool] = useState<string | null>(null);
  const chosenPool = pool ?? isoPools[0]?.storage ?? '';
  const isos = useContent(vm.config.node, chosenPool, 'iso');
  const current = (vm.pending ?? vm.config).cdroms ?? [];
  const [volume, setVolume] = useState(current[index]?.volume ?? '');
  const qc = useQueryClient();
  const save = useMutation({
    mutationFn: () => {
      const cdroms = current.map((c, i) => (i === index ? { volume } : c));
      return request('PUT', `/vms/${id}/config`, { body: { cdroms }, headers: { 'If-Match': vm.digest } });
    },
    onSuccess: () => {
      qc.invalidateQueries({ queryKey: keys.vm(id) });
      onClose();
    },
  });
  return (
    <Modal opened onClose={onClose} title={`CD/DVD drive cdrom${index}`}>
      <Stack>
        <Select label="Storage" data={isoPools.map((p) => p.storage)} value={chosenPool || null} onChange={setPool} />
        <Select
          label="ISO image"
          data={[{ value: '', label: 'empty (eject)' }, ...(isos.data ?? []).map((v) => ({ value: v.volid, label: v.volid }))]}
          value={volume}
          onChange={(v) => setVolume(v ?? '')}
          allowDeselect={false}
          error={save.error ? errorText(save.error) : undefined}
          searchable
        />
        <Group justify="flex-end"><Button variant="default" onClick={onClose}>Cancel</Button><Button onClick={() => save.mutate()} loading={save.isPending}>Save</Button></Group>
      </Stack>
    </Modal>
  );
}

export const sizeRe = /^[0-9]+[KMGT]?$/;

function AddDiskModal({ vm, onClose }: { vm: VM; onClose: () => void }) {
  const id = vm.config.vmid;
  const pools = useNodeStorage(vm.config.node);
  const imgPools = useMemo(() => (pools.data ?? []).filter((p) => p.active && p.content?.includes('images')), [pools.data]);
  const [storage, setStorage] = useState<string | null>(null);
  const [size, setSize] = useState('8G');
  const [bus, setBus] = useState('virtio');
  const [errs, setErrs] = useState<Record<string, string>>({});
  const pool = storage ?? imgPools[0]?.storage ?? '';
  const add = useTaskAction(() => `add a disk to VM ${id}`, () => post(`/vms/${id}/disks`, { storage: pool, size, bus }), [keys.vm(id)]);
  const submit = () => {
    if (!sizeRe.test(size) || /^0+[KMGT]?$/.test(size)) return setErrs({ size: 'a size like 8G or 512M' });
    add.mutate(undefined, { onSuccess: onClose, onError: (e) => setErrs(e instanceof ApiError ? e.fieldErrors() : {}) });
  };
  return (
    <Modal opened onClose={onClose} title={`Add a disk to VM ${id}`}>
      <form onSubmit={(e) => { e.preventDefault(); submit(); }}>
        <Stack>
          <Select label="Storage" data={imgPools.map((p) => p.storage)} value={pool || null} onChange={setStorage} error={errs.storage} allowDeselect={false} />
          <TextInput label="Size" value={size} onChange={(e) => setSize(e.currentTarget.value)} error={errs.size} data-autofocus />
          <Select label="Bus" data={['virtio', 'scsi', 'sata', 'ide']} value={bus} onChange={(v) => v && setBus(v)} error={errs.bus} allowDeselect={false} />
          <Text size="xs" c="dimmed">{vm.status === 'running' ? 'The VM is running: the disk is hot-plugged.' : ''}</Text>
          <Group justify="flex-end"><Button variant="default" onClick={onClose}>Cancel</Button><Button type="submit" loading={add.isPending}>Add</Button></Group>
        </Stack>
      </form>
    </Modal>
  );
}

function DetachModal({ vm, disk, onClose }: { vm: VM; disk: number; onClose: () => void }) {
  const id = vm.config.vmid;
  const [free, setFree] = useState(false);
  const detach = useTaskAction(() => `detach disk${disk} of VM ${id}`, () => del(`/vms/${id}/disks/${disk}`, { free }), [keys.vm(id)]);
  return (
    <Modal opened onClose={onClose} title={`Detach disk${disk}`}>
      <Stack>
        <Text size="sm">{vm.config.disks?.[disk]?.volume}</Text>
        <Checkbox label="Also delete the volume (cannot be undone)" checked={free} onChange={(e) => setFree(e.currentTarget.checked)} />
        <Group justify="flex-end">
          <Button variant="default" onClick={onClose}>Cancel</Button>
          <Button color="red" loading={detach.isPending} onClick={() => detach.mutate(undefined, { onSuccess: onClose })}>Detach</Button>
        </Group>
      </Stack>
    </Modal>
  );
}
