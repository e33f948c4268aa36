// A container: status and actions, summary, console (xterm.js, on demand),
// resources, network, DNS and options (with pending changes), snapshots.
import { lazy, Suspense } from 'react';
import { Alert, Badge, Card, Group, Loader, Progress, SimpleGrid, Stack, Tabs, Text, Title } from '@mantine/core';
import { errorText } from '../../api/client';
import { keys, useCT, useCTStatus, usePermissions, useResources } from '../../api/queries';
import { can } from '../../lib/perms';
import { Firewall } from '../firewall/Firewall';
import type { CT, CTStatus } from '../../api/types';
import { bytes, duration, pct } from '../../lib/format';
import { navigate, routePath } from '../../lib/route';
import type { ViewProps } from '../registry';
import { ConfigEditor, type Editable } from '../vm/ConfigEditor';
import { GuestActions } from '../vm/GuestActions';
import { Snapshots } from '../vm/Snapshots';
import { KV } from '../vm/VMView';
import { History } from '../graphs/History';
import { ctOptionFields, dnsFields, resourceFields } from './fields';
import { Nics } from './Nics';

const CTConsole = lazy(() => import('../../consoles/CTConsole'));

export const ctEditable = (ct: CT): Editable => ({
  base: `/containers/${ct.config.vmid}`, vmid: ct.config.vmid, config: ct.config, pending: ct.pending, digest: ct.digest, status: ct.status, queryKey: keys.ct(ct.config.vmid),
});

function Summary({ ct, st }: { ct: CT; st?: CTStatus }) {
  const c = ct.config;
  return (
    <Stack>
      <SimpleGrid cols={{ base: 1, md: 2 }}>
        <Card withBorder>
          <Stack gap={6}>
            <Text fw={600}>Status</Text>
            <KV k="Status" v={st?.status ?? ct.status} />
            <KV k="Node" v={c.node} />
            <KV k="Uptime" v={duration(st?.uptime)} />
            <Text size="sm" c="dimmed">CPU {(100 * (st?.cpu ?? 0)).toFixed(1)}% of {c.cores} CPU</Text>
            <Progress value={100 * (st?.cpu ?? 0)} aria-label="CPU usage" />
            <Text size="sm" c="dimmed">Memory {bytes(st?.mem)} of {bytes(st?.maxmem || c.memory * 1048576)}</Text>
            <Progress value={pct(st?.mem ?? 0, st?.maxmem || c.memory * 1048576)} aria-label="Memory usage" />
            <Text size="sm" c="dimmed">Root disk {bytes(st?.disk)}{st?.maxdisk ? ` of ${bytes(st.maxdisk)}` : ''}</Text>
            {!!st?.maxdisk && <Progress value={pct(st.disk, st.maxdisk)} aria-label="Disk usage" />}
            <KV k="Network in / out" v={`${bytes(st?.netin)} / ${bytes(st?.netout)}`} />
          </Stack>
        </Card>
        <Card withBorder>
          <Stack gap={6}>
            <Text fw={600}>Configuration</Text>
            <KV k="Hostname" v={c.hostname || '—'} />
            <KV k="OS" v={`${c.ostype} (${c.arch})`} />
            <KV k="Cores / memory / swap" v={`${c.cores} / ${c.memory} MiB / ${c.swap} MiB`} />
            <KV k="Root filesystem" v={c.rootfs.volume ?? '—'} />
            <KV k="Network" v={(c.nets ?? []).map((n) => `${n.name}${n.bridge ? `@${n.bridge}` : ''} ${n.ip ?? ''}`).join(', ') || '—'} />
            <KV k="Unprivileged" v={c.unprivileged ? 'yes' : 'no'} />
            <KV k="Tags" v={(c.tags ?? []).join(', ') || '—'} />
            {c.description && <Text size="sm" style={{ whiteSpace: 'pre-wrap' }}>{c.description}</Text>}
          </Stack>
        </Card>
      </SimpleGrid>
      <History path={`/containers/${c.vmid}/rrddata`} kind="guest" />
    </Stack>
  );
}

export function ContainerView({ route }: ViewProps) {
  const id = route.vmid!;
  const ct = useCT(id);
  const st = useCTStatus(id);
  const res = useResources();
  const perms = usePermissions();
  const tab = route.tab ?? 'summary';
  const setTab = (t: string | null) => navigate(routePath(route.id, t && t !== 'summary' ? t : undefined));
  if (ct.isLoading) return <Loader />;
  if (ct.error || !ct.data) return <Alert color="red">Container {id}: {errorText(ct.error)}</Alert>;
  const c = ct.data.config;
  const status = res.data?.find((r) => r.id === route.id)?.status ?? st.data?.status ?? ct.data.status;
  const ed = ctEditable(ct.data);
  return (
    <Stack>
      <Group justify="space-between" wrap="wrap">
        <Group gap="xs">
          <Title order={3}>CT {id}{c.hostname ? ` (${c.hostname})` : ''}</Title>
          <Badge color={status === 'running' ? 'green' : status === 'frozen' ? 'yellow' : 'gray'} data-testid="ct-status">{status}</Badge>
          {c.template && <Badge variant="outline">template</Badge>}
          {!c.unprivileged && <Badge color="orange" variant="light">privileged</Badge>}
          {ct.data.lock && <Badge color="orange">lock: {ct.data.lock}</Badge>}
        </Group>
        <GuestActions kind="lxc" state={{ vmid: id, status, template: !!c.template, lock: ct.data.lock }} name={c.hostname} onConsole={() => setTab('console')} />
      </Group>
      <Tabs value={tab} onChange={setTab} keepMounted={false}>
        <Tabs.List>
          <Tabs.Tab value="summary">Summary</Tabs.Tab>
          <Tabs.Tab value="console">Console</Tabs.Tab>
          <Tabs.Tab value="resources">Resources</Tabs.Tab>
          <Tabs.Tab value="network">Network</Tabs.Tab>
          <Tabs.Tab value="dns">DNS</Tabs.Tab>
          <Tabs.Tab value="options">Options</Tabs.Tab>
          <Tabs.Tab value="snapshots">Snapshots</Tabs.Tab>
          <Tabs.Tab value="firewall">Firewall</Tabs.Tab>
        </Tabs.List>
        <Tabs.Panel value="summary" pt="md"><Summary ct={ct.data} st={st.data} /></Tabs.Panel>
        <Tabs.Panel value="console" pt="md">
          <Suspense fallback={<Loader />}>
            <CTConsole vmid={id} running={status === 'running'} hasConsole={c.console} />
          </Suspense>
        </Tabs.Panel>
        <Tabs.Panel value="resources" pt="md"><ConfigEditor guest={ed} fields={resourceFields} title="Resources" /></Tabs.Panel>
        <Tabs.Panel value="network" pt="md"><Nics ct={ct.data} /></Tabs.Panel>
        <Tabs.Panel value="dns" pt="md"><ConfigEditor guest={ed} fields={dnsFields} title="DNS" /></Tabs.Panel>
        <Tabs.Panel value="options" pt="md"><ConfigEditor guest={ed} fields={ctOptionFields} title="Options" /></Tabs.Panel>
        <Tabs.Panel value="snapshots" pt="md"><Snapshots vmid={id} kind="lxc" /></Tabs.Panel>
        <Tabs.Panel value="firewall" pt="md"><Firewall base={`/containers/${id}/firewall`} mayWrite={can(perms.data, `/vms/${id}`, 'VM.Config.Network')} guest /></Tabs.Panel>
      </Tabs>
    </Stack>
  );
}
