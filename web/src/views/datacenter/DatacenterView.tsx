import { Card, Group, SimpleGrid, Stack, Table, Tabs, Text, Title, Badge } from '@mantine/core';
import { useNodes, usePermissions, useResources } from '../../api/queries';
import { can, canAnyBelow } from '../../lib/perms';
import { ClusterFirewall } from '../firewall/Firewall';
import { SDN } from '../network/SDN';
import { navigate, routePath } from '../../lib/route';
import type { ViewProps } from '../registry';
import { ACLTab, GroupsTab, RealmsTab, RolesTab, TokensTab, UsersTab } from './Access';

function Summary() {
  const res = useResources();
  const nodes = useNodes();
  const all = res.data ?? [];
  const count = (type: string, status?: string) => all.filter((r) => r.type === type && !r.template && (!status || r.status === status)).length;
  return (
    <Stack>
      <SimpleGrid cols={{ base: 2, md: 4 }}>
        {[
          ['Nodes online', `${all.filter((r) => r.type === 'node' && r.status === 'online').length} / ${count('node')}`],
          ['VMs running', `${count('qemu', 'running')} / ${count('qemu')}`],
          ['Containers running', `${count('lxc', 'running')} / ${count('lxc')}`],
          ['Templates', String(all.filter((r) => r.template).length)],
        ].map(([k, v]) => (
          <Card withBorder key={k}>
            <Text size="sm" c="dimmed">{k}</Text>
            <Text size="xl" fw={700}>{v}</Text>
          </Card>
        ))}
      </SimpleGrid>
      <Card withBorder>
        <Text fw={600} mb="xs">Nodes</Text>
        <Table fz="sm" highlightOnHover>
          <Table.Thead><Table.Tr><Table.Th>Node</Table.Th><Table.Th>Address</Table.Th><Table.Th>Version</Table.Th><Table.Th>Status</Table.Th></Table.Tr></Table.Thead>
          <Table.Tbody>
            {(nodes.data ?? []).map((n) => (
              <Table.Tr key={n.node} style={{ cursor: 'pointer' }} onClick={() => navigate(routePath(`node/${n.node}`))}>
                <Table.Td>{n.node}</Table.Td>
                <Table.Td>{n.address}</Table.Td>
                <Table.Td>{n.version}</Table.Td>
                <Table.Td><Badge color={n.online ? 'green' : 'red'} variant="light">{n.online ? 'online' : 'offline'}</Badge></Table.Td>
              </Table.Tr>
            ))}
          </Table.Tbody>
        </Table>
      </Card>
    </Stack>
  );
}

export function DatacenterView({ route }: ViewProps) {
  const perms = usePermissions();
  const tab = route.tab ?? 'summary';
  const seeAccess = canAnyBelow(perms.data, '/access', 'Sys.Audit', 'User.Modify', 'Permissions.Modify', 'Group.Allocate', 'Realm.Allocate');
  return (
    <Stack>
      <Group><Title order={3}>Datacenter</Title></Group>
      <Tabs value={tab} onChange={(t) => navigate(routePath('datacenter', t && t !== 'summary' ? t : undefined))} keepMounted={false}>
        <Tabs.List>
          <Tabs.Tab value="summary">Summary</Tabs.Tab>
          <Tabs.Tab value="users">Users</Tabs.Tab>
          <Tabs.Tab value="tokens">API tokens</Tabs.Tab>
          {seeAccess && <Tabs.Tab value="groups">Groups</Tabs.Tab>}
          <Tabs.Tab value="roles">Roles</Tabs.Tab>
          {seeAccess && <Tabs.Tab value="acl">Permissions</Tabs.Tab>}
          <Tabs.Tab value="realms">Realms</Tabs.Tab>
          {can(perms.data, '/', 'Sys.Audit') && <Tabs.Tab value="sdn">SDN</Tabs.Tab>}
          {can(perms.data, '/', 'Sys.Audit') && <Tabs.Tab value="firewall">Firewall</Tabs.Tab>}
        </Tabs.List>
        <Tabs.Panel value="summary" pt="md"><Summary /></Tabs.Panel>
        <Tabs.Panel value="users" pt="md"><UsersTab /></Tabs.Panel>
        <Tabs.Panel value="tokens" pt="md"><TokensTab /></Tabs.Panel>
        <Tabs.Panel value="groups" pt="md"><GroupsTab /></Tabs.Panel>
        <Tabs.Panel value="roles" pt="md"><RolesTab /></Tabs.Panel>
        <Tabs.Panel value="acl" pt="md"><ACLTab /></Tabs.Panel>
        <Tabs.Panel value="realms" pt="md"><RealmsTab /></Tabs.Panel>
        <Tabs.Panel value="sdn" pt="md"><SDN mayWrite={can(perms.data, '/', 'Sys.Modify')} /></Tabs.Panel>
        <Tabs.Panel value="firewall" pt="md"><ClusterFirewall mayWrite={can(perms.data, '/', 'Sys.Modify')} /></Tabs.Panel>
      </Tabs>
    </Stack>
  );
}
