// The create-VM wizard (loaded on demand). Each step checks its fields on
// "Next"; the server's field errors (problem+json errors[]) come back onto
// the same fields and the wizard jumps to the first step that has one.
import { useEffect, useMemo, useState } from 'react';
import { useGuestDefaults, useWizard, WizardFooter } from '../../lib/wizard';
import { Checkbox, Code, Modal, NumberInput, Select, Stack, Stepper, Switch, TagsInput, Text, TextInput } from '@mantine/core';
import { useQueryClient } from '@tanstack/react-query';
import { request } from '../../api/client';
import { keys, useContent, useNodeStorage, useResources } from '../../api/queries';
import { navigate, routePath } from '../../lib/route';
import { defaultForm, formField, stepOf, steps, toRequest, validate, type CreateForm } from './createForm';

export default function CreateVM({ onClose }: { onClose: () => void }) {
  const res = useResources();
  const nodes = (res.data ?? []).filter((r) => r.type === 'node').map((r) => r.node!);
  const w = useWizard<CreateForm>(defaultForm, { steps: steps.length, validate, stepOf: (k) => stepOf(fieldStep[k] ?? k), formField });
  const { f, setF, set, step, setStep, err } = w;
  const qc = useQueryClient();
  const node = f.node || nodes[0] || '';
  const pools = useNodeStorage(node);
  const isoPool = useMemo(() => (pools.data ?? []).filter((p) => p.active && p.content?.includes('iso')), [pools.data]);
  const imgPools = useMemo(() => (pools.data ?? []).filter((p) => p.active && p.content?.includes('images')), [pools.data]);
  const [isoStorage, setIsoStorage] = useState('');
  const isoSt = isoStorage || isoPool[0]?.storage || '';
  const isos = useContent(node, isoSt, 'iso');

  useGuestDefaults(f, setF, nodes);
  useEffect(() => {
    if (!f.diskStorage && imgPools[0]) setF((x) => (x.diskStorage ? x : { ...x, diskStorage: imgPools[0].storage }));
  }, [imgPools, f.diskStorage]);

  const submit = () =>
    w.submit(async (form) => {
      const { data } = await request<{ vmid: number; task: string }>('POST', '/vms', { body: toRequest({ ...form, node }) });
      qc.invalidateQueries({ queryKey: keys.tasks });
      qc.invalidateQueries({ queryKey: keys.resources });
      onClose();
      navigate(routePath(`qemu/${data.vmid}`));
    });

  return (
    <Modal opened onClose={onClose} title="Create virtual machine" size="xl" data-testid="create-vm-wizard">
      <Stepper active={step} onStepClick={setStep} size="xs" allowNextStepsSelect={false}>
        <Stepper.Step label="General">
          <Stack>
            <Select label="Node" data={nodes} value={node} onChange={(v) => v && set('node')(v)} allowDeselect={false} />
            <NumberInput clampBehavior="none" label="VM ID" value={f.vmid} onChange={(v) => set('vmid')(v === '' ? '' : Number(v))} error={err('vmid')} min={100} allowDecimal={false} name="vmid" />
            <TextInput label="Name" value={f.name} onChange={(e) => set('name')(e.currentTarget.value)} error={err('name')} name="name" />
            <TagsInput label="Tags" value={f.tags} onChange={set('tags')} error={err('tags')} />
          </Stack>
        </Stepper.Step>
        <Stepper.Step label="OS">
          <Stack>
            <Select label="ISO storage" data={isoPool.map((p) => p.storage)} value={isoSt || null} onChange={(v) => setIsoStorage(v ?? '')} placeholder="no pool holds ISO images" />
            <Select
              label="ISO image"
              name="iso"
              data={[{ value: '', label: 'no CD-ROM' }, ...(isos.data ?? []).map((v) => ({ value: v.volid, label: v.volid }))]}
              value={f.iso}
              onChange={(v) => set('iso')(v ?? '')}
              error={err('iso')}
              allowDeselect={false}
              searchable
            />
          </Stack>
        </Stepper.Step>
        <Stepper.Step label="System">
          <Stack>
            <Select label="Machine" data={['q35', 'pc']} value={f.machine} onChange={(v) => v && set('machine')(v as CreateForm['machine'])} allowDeselect={false} error={err('machine')} />
            <Select label="BIOS" data={['seabios', 'ovmf']} value={f.bios} onChange={(v) => v && set('bios')(v as CreateForm['bios'])} allowDeselect={false} error={err('bios')} />
            <Select label="Display" data={['std', 'virtio', 'qxl', 'serial0', 'none']} value={f.vga} onChange={(v) => v && set('vga')(v as CreateForm['vga'])} allowDeselect={false} error={err('vga')} />
            <Switch label="Serial console" checked={f.serial} onChange={(e) => set('serial')(e.currentTarget.checked)} />
          </Stack>
        </Stepper.Step>
        <Stepper.Step label="Disks">
          <Stack>
            <Select
              label="Storage"
              name="diskStorage"
              data={[{ value: '', label: 'no disk' }, ...imgPools.map((p) => ({ value: p.storage, label: `${p.storage} (${p.type})` }))]}
              value={f.diskStorage}
              onChange={(v) => set('diskStorage')(v ?? '')}
              error={err('diskStorage')}
              allowDeselect={false}
            />
            <TextInput label="Size" description="e.g. 8G, 512M" value={f.diskSize} onChange={(e) => set('diskSize')(e.currentTarget.value)} error={err('diskSize')} disabled={!f.diskStorage} name="diskSize" />
            <Select label="Bus" data={['virtio', 'scsi', 'sata', 'ide']} value={f.diskBus} onChange={(v) => v && set('diskBus')(v as CreateForm['diskBus'])} allowDeselect={false} disabled={!f.diskStorage} />
          </Stack>
        </Stepper.Step>
        <Stepper.Step label="CPU">
          <Stack>
            <NumberInput clampBehavior="none" label="Sockets" value={f.sockets} onChange={(v) => set('sockets')(Number(v))} error={err('sockets')} min={1} max={4} allowDecimal={false} name="sockets" />
            <NumberInput clampBehavior="none" label="Cores per socket" value={f.cores} onChange={(v) => set('cores')(Number(v))} error={err('cores')} min={1} max={128} allowDecimal={false} name="cores" />
            <Select label="Type" data={['host', 'max', 'x86-64-v2', 'x86-64-v2-AES', 'x86-64-v3', 'qemu64', 'kvm64']} value={f.cpu} onChange={(v) => v && set('cpu')(v)} allowDeselect={false} error={err('cpu')} />
          </Stack>
        </Stepper.Step>
        <Stepper.Step label="Memory">
          <Stack>
            <NumberInput clampBehavior="none" label="Memory (MiB)" value={f.memory} onChange={(v) => set('memory')(Number(v))} error={err('memory')} min={16} step={128} allowDecimal={false} name="memory" />
            <NumberInput clampBehavior="none" label="Minimum memory for the balloon (MiB, 0 = no balloon)" value={f.balloon} onChange={(v) => set('balloon')(Number(v))} error={err('balloon')} min={0} allowDecimal={false} />
          </Stack>
        </Stepper.Step>
        <Stepper.Step label="Network">
          <Stack>
            <TextInput label="Bridge" description="leave empty for no network device" value={f.netBridge} onChange={(e) => set('netBridge')(e.currentTarget.value)} error={err('netBridge')} name="netBridge" />
            <Select label="Model" data={['virtio', 'e1000']} value={f.netModel} onChange={(v) => v && set('netModel')(v as CreateForm['netModel'])} allowDeselect={false} disabled={!f.netBridge} />
          </Stack>
        </Stepper.Step>
        <Stepper.Step label="Confirm">
          <Stack>
            <Text size="sm">The VM will be created with:</Text>
            <Code block data-testid="create-summary">{JSON.stringify(toRequest({ ...f, node }), null, 2)}</Code>
            <Checkbox label="Start after creating" checked={f.start} onChange={(e) => set('start')(e.currentTarget.checked)} />
          </Stack>
        </Stepper.Step>
      </Stepper>
      <WizardFooter w={w} steps={steps.length} onClose={onClose} onCreate={submit} />
    </Modal>
  );
}

// Form fields named differently from their server field, for stepOf.
const fieldStep: Record<string, string> = { iso: 'cdroms', diskSize: 'disks', diskStorage: 'disks', diskBus: 'disks', netBridge: 'nets', netModel: 'nets' };
