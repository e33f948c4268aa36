import { useMemo } from 'react';
import { Alert, Badge, Card, Group, Loader, Progress, SimpleGrid, Stack, Table, Tabs, Text, Title } from '@mantine/core';
import { errorText } from '../../api/client';
import { useNodeStatus, useNodeStorage, usePermissions } from '../../api/queries';
import { can } from '../../lib/perms';
import { Firewall } from '../firewall/Firewall';
import { NodeNetwork } from '../network/NodeNetwork';
import type { Usage } from '../../api/types';
import { bytes, duration, pct } from '../../lib/format';
import { navigate, routePath } from '../../lib/route';
import { useHistory } from '../graphs/history';
import { History } from '../graphs/History';
import { LiveChart } from '../graphs/LiveChart';
import type { ViewProps } from '../registry';
import { KV } from '../vm/VMView';

export function UsageBar({ label, u }: { label: string; u?: Usage }) {
  if (!u) return null;
  return (
    <Stack gap={2}>
      <Text size="sm" c="dimmed">{label}: {bytes(u.used)} of {bytes(u.total)} ({pct(u.used, u.total).toFixed(0)}%)</Text>
      <Progress value={pct(u.used, u.total)} color={pct(u.used, u.total) > 90 ? 'red' : undefined} aria-label={`${label} usage`} />
    </Stack>
  );
}

const loadSeries = [{ label: 'load 1m', color: '#fd7e14' }];
const memSeries = [{ label: 'memory used', color: '#228be6', fmt: (v: number) => bytes(v) }];

export function NodeView({ route }: ViewProps) {
  const node = route.node!;
  const perms = usePermissions();
  const tab = route.tab ?? 'summary';
  const mayWrite = can(perms.data, `/nodes/${node}`, 'Sys.Modify');
  return (
    <Stack>
      <Title order={3}>Node {node}</Title>
      <Tabs value={tab} onChange={(t) => navigate(routePath(route.id, t && t !== 'summary' ? t : undefined))} keepMounted={false}>
        <Tabs.List>
          <Tabs.Tab value="summary">Summary</Tabs.Tab>
          <Tabs.Tab value="network">Network</Tabs.Tab>
          <Tabs.Tab value="firewall">Firewall</Tabs.Tab>
        </Tabs.List>
        <Tabs.Panel value="summary" pt="md"><NodeSummary node={node} /></Tabs.Panel>
        <Tabs.Panel value="network" pt="md"><NodeNetwork node={node} mayWrite={mayWrite} /></Tabs.Panel>
        <Tabs.Panel value="firewall" pt="md"><Firewall base={`/nodes/${node}/firewall`} mayWrite={mayWrite} /></Tabs.Panel>
      </Tabs>
    </Stack>
  );
}

function NodeSummary({ node }: { node: string }) {
  const st = useNodeStatus(node);
  const pools = useNodeStorage(node);
  const hist = useHistory(st.data ? [st.data.load?.[0] ?? 0, st.data.memory.used] : undefined, st.dataUpdatedAt);
  const load = useMemo(() => hist.map((h) => ({ t: h.t, v: [h.v[0]] })), [hist]);
  const mem = useMemo(() => hist.map((h) => ({ t: h.t, v: [h.v[1]] })), [hist]);
  return (
    <Stack>
      {st.isLoading && <Loader />}
      {st.error && <Alert color="yellow">Status of {node}: {errorText(st.error)}</Alert>}
      {st.data && (
        <SimpleGrid cols={{ base: 1, md: 2 }}>
          <Card withBorder>
            <Stack gap={6}>
              <Text fw={600}>Host</Text>
              <KV k="CPU" v={`${st.data.cpus} × ${st.data.cpu_model}`} />
              <KV k="Load average" v={(st.data.load ?? []).map((l) => l.toFixed(2)).join(' ')} />
              <KV k="Kernel" v={st.data.kernel} />
              <KV k="Uptime" v={duration(st.data.uptime)} />
              <UsageBar label="Memory" u={st.data.memory} />
              <UsageBar label="Swap" u={st.data.swap} />
              <UsageBar label="Root filesystem" u={st.data.rootfs} />
            </Stack>
          </Card>
          <Card withBorder>
            <Stack gap={6}>
              <Text fw={600}>Capabilities</Text>
              {(['kvm', 'qemu', 'lxc'] as const).map((k) => (
                <Group key={k} justify="space-between">
                  <Text size="sm">{k.toUpperCase()}</Text>
                  <Group gap={4}>
                    <Badge color={st.data[k].available ? 'green' : 'gray'} variant="light">{st.data[k].available ? st.data[k].version || 'yes' : 'no'}</Badge>
                  </Group>
                </Group>
              ))}
              {(['kvm', 'qemu', 'lxc'] as const).filter((k) => st.data[k].detail).map((k) => (
                <Text key={k} size="xs" c="dimmed">{k}: {st.data[k].detail}</Text>
              ))}
            </Stack>
          </Card>
          <Card withBorder><LiveChart title="Load average (live)" samples={load} series={loadSeries} /></Card>
          <Card withBorder><LiveChart title="Memory (live)" samples={mem} series={memSeries} /></Card>
        </SimpleGrid>
      )}
      <History path={`/nodes/${node}/rrddata`} kind="node" />
      <Card withBorder>
        <Text fw={600} mb="xs">Storage</Text>
        <Table fz="sm" highlightOnHover>
          <Table.Thead><Table.Tr><Table.Th>Pool</Table.Th><Table.Th>Type</Table.Th><Table.Th>Content</Table.Th><Table.Th>Usage</Table.Th><Table.Th>Status</Table.Th></Table.Tr></Table.Thead>
          <Table.Tbody>
            {(pools.data ?? []).map((p) => (
              <Table.Tr key={p.storage} style={{ cursor: 'pointer' }} onClick={() => navigate(routePath(`storage/${node}/${p.storage}`))}>
                <Table.Td>{p.storage}</Table.Td>
                <Table.Td>{p.type}</Table.Td>
                <Table.Td>{(p.content ?? []).join(', ')}</Table.Td>
                <Table.Td w={200}><Progress value={pct(p.used, p.total)} aria-label={`${p.storage} usage`} /><Text size="xs">{bytes(p.used)} / {bytes(p.total)}</Text></Table.Td>
                <Table.Td>{p.active ? 'active' : p.reason || 'inactive'}</Table.Td>
              </Table.Tr>
            ))}
          </Table.Tbody>
        </Table>
      </Card>
    </Stack>
  );
}
