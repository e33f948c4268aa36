// The create-container wizard (loaded on demand). Each step checks its
// fields on "Next"; the server's field errors come back onto the same
// fields and the wizard jumps to the first step that has one.
import { useEffect, useMemo, useState } from 'react';
import { useGuestDefaults, useWizard, WizardFooter } from '../../lib/wizard';
import { Checkbox, Code, Modal, NumberInput, PasswordInput, Select, Stack, Stepper, Switch, TagsInput, Text, TextInput, Textarea } from '@mantine/core';
import { useQueryClient } from '@tanstack/react-query';
import { request } from '../../api/client';
import { keys, useContent, useNodeStorage, usePermissions, useResources } from '../../api/queries';
import { can } from '../../lib/perms';
import { navigate, routePath } from '../../lib/route';
import { ctFormField, ctStepOf, ctSteps, defaultCTForm, toCTRequest, validateCT, type CTForm } from './createForm';
import { NicFields } from './Nics';

export default function CreateCT({ onClose }: { onClose: () => void }) {
  const res = useResources();
  const perms = usePermissions();
  const nodes = (res.data ?? []).filter((r) => r.type === 'node').map((r) => r.node!);
  const w = useWizard<CTForm>(defaultCTForm, { steps: ctSteps.length, validate: validateCT, stepOf: ctStepOf, formField: ctFormField });
  const { f, setF, set, step, setStep, err, errors } = w;
  const qc = useQueryClient();
  const node = f.node || nodes[0] || '';
  const pools = useNodeStorage(node);
  const tmplPools = useMemo(() => (pools.data ?? []).filter((p) => p.active && p.content?.includes('vztmpl')), [pools.data]);
  const rootPools = useMemo(() => (pools.data ?? []).filter((p) => p.active && p.content?.includes('rootdir')), [pools.data]);
  const [tmplStorage, setTmplStorage] = useState('');
  const tSt = tmplStorage || tmplPools[0]?.storage || '';
  const templates = useContent(node, tSt, 'vztmpl');

  useGuestDefaults(f, setF, nodes);
  useEffect(() => {
    if (!f.rootStorage && rootPools[0]) setF((x) => (x.rootStorage ? x : { ...x, rootStorage: rootPools[0].storage }));
  }, [rootPools, f.rootStorage]);

  const submit = () =>
    w.submit(async (form) => {
      const { data } = await request<{ vmid: number; task: string }>('POST', '/containers', { body: toCTRequest({ ...form, node }) });
      qc.invalidateQueries({ queryKey: keys.tasks });
      qc.invalidateQueries({ queryKey: keys.resources });
      onClose();
      navigate(routePath(`lxc/${data.vmid}`));
    });
  const netErr = Object.fromEntries(Object.entries(errors).filter(([k]) => k.startsWith('net.')).map(([k, v]) => [k.slice(4), v]));

  return (
    <Modal opened onClose={onClose} title="Create container" size="xl" data-testid="create-ct-wizard">
      <Stepper active={step} onStepClick={setStep} size="xs" allowNextStepsSelect={false}>
        <Stepper.Step label="General">
          <Stack>
            <Select label="Node" data={nodes} value={node} onChange={(v) => v && set('node')(v)} allowDeselect={false} />
            <NumberInput clampBehavior="none" label="CT ID" value={f.vmid} onChange={(v) => set('vmid')(v === '' ? '' : Number(v))} error={err('vmid')} min={100} allowDecimal={false} name="vmid" />
            <TextInput label="Hostname" value={f.hostname} onChange={(e) => set('hostname')(e.currentTarget.value)} error={err('hostname')} name="hostname" />
            <TagsInput label="Tags" value={f.tags} onChange={set('tags')} error={err('tags')} />
            <Switch
              label="Unprivileged container"
              description={can(perms.data, '/', 'Sys.Modify') ? 'root in the container is an unprivileged user of the host' : 'privileged containers need Sys.Modify on /'}
              checked={f.unprivileged}
              disabled={!can(perms.data, '/', 'Sys.Modify')}
              onChange={(e) => set('unprivileged')(e.currentTarget.checked)}
              error={err('unprivileged')}
            />
            <PasswordInput label="Root password" value={f.password} onChange={(e) => set('password')(e.currentTarget.value)} error={err('password')} name="password" />
            <PasswordInput label="Confirm password" value={f.password2} onChange={(e) => set('password2')(e.currentTarget.value)} error={err('password2')} name="password2" />
            <Textarea label="SSH public keys" description="one a line" value={f.sshKeys} onChange={(e) => set('sshKeys')(e.currentTarget.value)} error={err('sshKeys')} autosize minRows={2} />
          </Stack>
        </Stepper.Step>
        <Stepper.Step label="Template">
          <Stack>
            <Select label="Template storage" data={tmplPools.map((p) => p.storage)} value={tSt || null} onChange={(v) => setTmplStorage(v ?? '')} placeholder="no pool holds container templates" />
            <Select
              label="Template"
              name="ostemplate"
              data={(templates.data ?? []).map((v) => ({ value: v.volid, label: v.volid }))}
              value={f.ostemplate || null}
              onChange={(v) => set('ostemplate')(v ?? '')}
              error={err('ostemplate')}
              placeholder={templates.data?.length === 0 ? 'no templates: download or build one on the storage view' : undefined}
              allowDeselect={false}
              searchable
            />
          </Stack>
        </Stepper.Step>
        <Stepper.Step label="Root disk">
          <Stack>
            <Select label="Storage" name="rootStorage" data={rootPools.map((p) => ({ value: p.storage, label: `${p.storage} (${p.type})` }))} value={f.rootStorage || null} onChange={(v) => set('rootStorage')(v ?? '')} error={err('rootStorage')} allowDeselect={false} />
            <TextInput label="Size" description="e.g. 512M, 8G" value={f.rootSize} onChange={(e) => set('rootSize')(e.currentTarget.value)} error={err('rootSize')} name="rootSize" />
          </Stack>
        </Stepper.Step>
        <Stepper.Step label="CPU">
          <Stack>
            <NumberInput clampBehavior="none" label="Cores" value={f.cores} onChange={(v) => set('cores')(Number(v))} error={err('cores')} min={1} max={128} allowDecimal={false} name="cores" />
            <NumberInput clampBehavior="none" label="CPU limit (CPUs, 0 = none)" value={f.cpulimit} onChange={(v) => set('cpulimit')(Number(v))} error={err('cpulimit')} min={0} max={128} />
          </Stack>
        </Stepper.Step>
        <Stepper.Step label="Memory">
          <Stack>
            <NumberInput clampBehavior="none" label="Memory (MiB)" value={f.memory} onChange={(v) => set('memory')(Number(v))} error={err('memory')} min={16} step={128} allowDecimal={false} name="memory" />
            <NumberInput clampBehavior="none" label="Swap (MiB)" value={f.swap} onChange={(v) => set('swap')(Number(v))} error={err('swap')} min={0} step={128} allowDecimal={false} name="swap" />
          </Stack>
        </Stepper.Step>
        <Stepper.Step label="Network">
          <Stack>
            <Switch label="Network device" checked={f.withNet} onChange={(e) => set('withNet')(e.currentTarget.checked)} data-testid="ct-with-net" />
            {f.withNet && <NicFields n={f.net} set={set('net')} err={netErr} />}
          </Stack>
        </Stepper.Step>
        <Stepper.Step label="DNS">
          <Stack>
            <TextInput label="DNS servers" description="up to 3; empty: the host's" value={f.nameserver} onChange={(e) => set('nameserver')(e.currentTarget.value)} error={err('nameserver')} />
            <TextInput label="DNS domain" value={f.searchdomain} onChange={(e) => set('searchdomain')(e.currentTarget.value)} error={err('searchdomain')} />
          </Stack>
        </Stepper.Step>
        <Stepper.Step label="Confirm">
          <Stack>
            <Text size="sm">The container will be created with:</Text>
            <Code block data-testid="create-summary">{JSON.stringify({ ...toCTRequest({ ...f, node }), password: f.password ? '••••••' : undefined }, null, 2)}</Code>
            <Checkbox label="Start after creating" checked={f.start} onChange={(e) => set('start')(e.currentTarget.checked)} />
          </Stack>
        </Stepper.Step>
      </Stepper>
      <WizardFooter w={w} steps={ctSteps.length} onClose={onClose} onCreate={submit} />
    </Modal>
  );
}
