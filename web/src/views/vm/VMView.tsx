import { lazy, Suspense, useMemo } from 'react';
import { Alert, Badge, Card, Group, Loader, Progress, SimpleGrid, Stack, Tabs, Text, Title } from '@mantine/core';
import { errorText } from '../../api/client';
import { usePermissions, useResources, useVM, useVMStatus } from '../../api/queries';
import { can } from '../../lib/perms';
import { Firewall } from '../firewall/Firewall';
import type { VM, VMStatus } from '../../api/types';
import { bytes, duration, pct } from '../../lib/format';
import { navigate, routePath } from '../../lib/route';
import { useHistory } from '../graphs/history';
import { History } from '../graphs/History';
import { LiveChart } from '../graphs/LiveChart';
import type { ViewProps } from '../registry';
import { CloudInit } from './CloudInit';
import { ConfigEditor, hardwareFields, optionFields, vmEditable } from './ConfigEditor';
import { Devices } from './Devices';
import { GuestActions } from './GuestActions';
import { Snapshots } from './Snapshots';

// The consoles load on demand: noVNC and xterm.js stay out of the first bundle.
const Console = lazy(() => import('../../consoles/Console'));

export function KV({ k, v }: { k: string; v: React.ReactNode }) {
  return (
    <Group justify="space-between" wrap="nowrap" gap="xs">
      <Text size="sm" c="dimmed">{k}</Text>
      <Text size="sm" ta="right">{v}</Text>
    </Group>
  );
}

const cpuSeries = [{ label: 'CPU', color: '#12b886', fmt: (v: number) => `${v.toFixed(0)}%` }];
const memSeries = [{ label: 'Memory', color: '#228be6', fmt: (v: number) => bytes(v) }];

function Summary({ vm, st, at }: { vm: VM; st?: VMStatus; at: number }) {
  const c = vm.config;
  const running = st?.status === 'running';
  const hist = useHistory(running && st ? [100 * st.cpu, st.mem] : undefined, at);
  const cpu = useMemo(() => hist.map((h) => ({ t: h.t, v: [h.v[0]] })), [hist]);
  const mem = useMemo(() => hist.map((h) => ({ t: h.t, v: [h.v[1]] })), [hist]);
  return (
    <Stack>
    <SimpleGrid cols={{ base: 1, md: 2 }}>
      <Card withBorder>
        <Stack gap={6}>
          <Text fw={600}>Status</Text>
          <KV k="Status" v={st?.status ?? vm.status} />
          <KV k="Node" v={c.node} />
          <KV k="Uptime" v={duration(st?.uptime)} />
          <KV k="Acceleration" v={st?.accel || '—'} />
          {st?.warning && <Text size="sm" c="orange">{st.warning}</Text>}
          <Text size="sm" c="dimmed">CPU {(100 * (st?.cpu ?? 0)).toFixed(1)}% of {c.sockets * c.cores} vCPU</Text>
          <Progress value={100 * (st?.cpu ?? 0)} aria-label="CPU usage" />
          <Text size="sm" c="dimmed">Memory {bytes(st?.mem)} of {bytes((st?.maxmem || c.memory * 1048576))}</Text>
          <Progress value={pct(st?.mem ?? 0, st?.maxmem || c.memory * 1048576)} aria-label="Memory usage" />
        </Stack>
      </Card>
      <Card withBorder>
        <Stack gap={6}>
          <Text fw={600}>Configuration</Text>
          <KV k="Name" v={c.name || '—'} />
          <KV k="CPU" v={`${c.sockets} × ${c.cores} (${c.cpu})`} />
          <KV k="Memory" v={`${c.memory} MiB`} />
          <KV k="Machine / BIOS" v={`${c.machine} / ${c.bios}`} />
          <KV k="Disks" v={(c.disks ?? []).map((d) => d.volume).join(', ') || '—'} />
          <KV k="Tags" v={(c.tags ?? []).join(', ') || '—'} />
          {c.description && <Text size="sm" style={{ whiteSpace: 'pre-wrap' }}>{c.description}</Text>}
        </Stack>
      </Card>
      {running && (
        <>
          <Card withBorder><LiveChart title="CPU usage (live)" samples={cpu} series={cpuSeries} max={100} /></Card>
          <Card withBorder><LiveChart title="Memory (live)" samples={mem} series={memSeries} /></Card>
        </>
      )}
    </SimpleGrid>
    <History path={`/vms/${c.vmid}/rrddata`} kind="guest" />
    </Stack>
  );
}

export function VMView({ route }: ViewProps) {
  const id = route.vmid!;
  const vm = useVM(id);
  const st = useVMStatus(id);
  const res = useResources();
  const perms = usePermissions();
  const tab = route.tab ?? 'summary';
  const setTab = (t: string | null) => navigate(routePath(route.id, t && t !== 'summary' ? t : undefined));
  if (vm.isLoading) return <Loader />;
  if (vm.error || !vm.data) return <Alert color="red">VM {id}: {errorText(vm.error)}</Alert>;
  const c = vm.data.config;
  const status = st.data?.status ?? res.data?.find((r) => r.id === route.id)?.status ?? vm.data.status;
  return (
    <Stack>
      <Group justify="space-between" wrap="wrap">
        <Group gap="xs">
          <Title order={3}>VM {id}{c.name ? ` (${c.name})` : ''}</Title>
          <Badge color={status === 'running' ? 'green' : status === 'paused' ? 'yellow' : 'gray'} data-testid="vm-status">{status}</Badge>
          {c.template && <Badge variant="outline">template</Badge>}
          {vm.data.lock && <Badge color="orange">lock: {vm.data.lock}</Badge>}
        </Group>
        <GuestActions
          state={{ vmid: id, status, template: !!c.template, lock: vm.data.lock }}
          name={c.name}
          onConsole={() => setTab('console')}
        />
      </Group>
      <Tabs value={tab} onChange={setTab} keepMounted={false}>
        <Tabs.List>
          <Tabs.Tab value="summary">Summary</Tabs.Tab>
          <Tabs.Tab value="console">Console</Tabs.Tab>
          <Tabs.Tab value="hardware">Hardware</Tabs.Tab>
          <Tabs.Tab value="options">Options</Tabs.Tab>
          <Tabs.Tab value="snapshots">Snapshots</Tabs.Tab>
          <Tabs.Tab value="firewall">Firewall</Tabs.Tab>
        </Tabs.List>
        <Tabs.Panel value="summary" pt="md"><Summary vm={vm.data} st={st.data} at={st.dataUpdatedAt} /></Tabs.Panel>
        <Tabs.Panel value="console" pt="md">
          <Suspense fallback={<Loader />}>
            <Console vmid={id} running={status === 'running' || status === 'paused'} serial={c.serial} vga={c.vga} />
          </Suspense>
        </Tabs.Panel>
        <Tabs.Panel value="hardware" pt="md">
          <Stack>
            <ConfigEditor guest={vmEditable(vm.data)} fields={hardwareFields} title="Hardware" />
            <Devices vm={vm.data} />
          </Stack>
        </Tabs.Panel>
        <Tabs.Panel value="options" pt="md">
          <Stack>
            <ConfigEditor guest={vmEditable(vm.data)} fields={optionFields} title="Options" />
            <CloudInit vm={vm.data} />
          </Stack>
        </Tabs.Panel>
        <Tabs.Panel value="snapshots" pt="md"><Snapshots vmid={id} /></Tabs.Panel>
        <Tabs.Panel value="firewall" pt="md"><Firewall base={`/vms/${id}/firewall`} mayWrite={can(perms.data, `/vms/${id}`, 'VM.Config.Network')} guest /></Tabs.Panel>
      </Tabs>
    </Stack>
  );
}
