import { lazy, Suspense, useState } from 'react';
import { ActionIcon, AppShell, Burger, Button, Group, Loader, Menu, Text, Title, Tooltip, useMantineColorScheme, useComputedColorScheme } from '@mantine/core';
import { useDisclosure, useMediaQuery } from '@mantine/hooks';
import { Login } from './auth/Login';
import { useSession } from './auth/session';
import { useLiveUpdates } from './api/live';
import { usePermissions, useVersion } from './api/queries';
import { ErrorBoundary } from './lib/ErrorBoundary';
import { can } from './lib/perms';
import { navigate, parseRoute, routePath, usePath } from './lib/route';
import { TasksPanel } from './tasks/TasksPanel';
import { ResourceTree } from './tree/ResourceTree';
import { views } from './views/registry';

const CreateVM = lazy(() => import('./views/vm/CreateVM'));
const CreateCT = lazy(() => import('./views/container/CreateCT'));

function ThemeToggle() {
  const { setColorScheme } = useMantineColorScheme();
  const scheme = useComputedColorScheme('light');
  return (
    <Tooltip label={scheme === 'dark' ? 'Light theme' : 'Dark theme'}>
      <ActionIcon variant="default" size="lg" aria-label="Toggle color theme" onClick={() => setColorScheme(scheme === 'dark' ? 'light' : 'dark')}>
        {scheme === 'dark' ? '☀' : '☾'}
      </ActionIcon>
    </Tooltip>
  );
}

function Shell() {
  const { session, logout } = useSession();
  const path = usePath();
  const route = parseRoute(path);
  const [navOpen, { toggle: toggleNav, close: closeNav }] = useDisclosure(false);
  const [tasksOpen, setTasksOpen] = useState(true);
  const [creating, setCreating] = useState<'' | 'vm' | 'ct'>('');
  const perms = usePermissions();
  const version = useVersion();
  const narrow = useMediaQuery('(max-width: 48em)');
  useLiveUpdates(true);
  const View = views[route.kind];
  const tasksHeight = tasksOpen ? (narrow ? 150 : 190) : 0;

  return (
    <AppShell
      header={{ height: 52 }}
      navbar={{ width: { base: 260, lg: 300 }, breakpoint: 'sm', collapsed: { mobile: !navOpen } }}
      footer={{ height: tasksHeight + 30 }}
      padding="md"
    >
      <AppShell.Header>
        <Group h="100%" px="md" justify="space-between" wrap="nowrap">
          <Group gap="sm" wrap="nowrap">
            <Burger opened={navOpen} onClick={toggleNav} hiddenFrom="sm" size="sm" aria-label="Toggle resource tree" />
            <Title order={3} style={{ cursor: 'pointer' }} onClick={() => navigate('/datacenter')}>Corral</Title>
            {version.data && <Text size="xs" c="dimmed" visibleFrom="sm">{version.data.version}</Text>}
          </Group>
          <Group gap="xs" wrap="nowrap">
            {can(perms.data, '/vms', 'VM.Allocate') && (
              <>
                <Button size="xs" onClick={() => setCreating('vm')} data-testid="create-vm">Create VM</Button>
                <Button size="xs" onClick={() => setCreating('ct')} data-testid="create-ct">Create CT</Button>
              </>
            )}
            <ThemeToggle />
            <Menu position="bottom-end">
              <Menu.Target>
                <Button variant="default" size="xs" data-testid="user-menu">{session?.username}</Button>
              </Menu.Target>
              <Menu.Dropdown>
                <Menu.Label>Session until {session ? new Date(session.expires).toLocaleTimeString() : ''}</Menu.Label>
                <Menu.Item onClick={logout} data-testid="logout">Log out</Menu.Item>
              </Menu.Dropdown>
            </Menu>
          </Group>
        </Group>
      </AppShell.Header>
      <AppShell.Navbar p="xs">
        <ResourceTree
          selected={route.id}
          onSelect={(id) => {
            navigate(routePath(id));
            closeNav();
          }}
        />
      </AppShell.Navbar>
      <AppShell.Main>
        <ErrorBoundary key={route.id}>
          <View route={route} />
        </ErrorBoundary>
        {creating && (
          <ErrorBoundary>
            <Suspense fallback={<Loader />}>
              {creating === 'vm' ? <CreateVM onClose={() => setCreating('')} /> : <CreateCT onClose={() => setCreating('')} />}
            </Suspense>
          </ErrorBoundary>
        )}
      </AppShell.Main>
      <AppShell.Footer>
        <Group h={30} px="sm" justify="space-between">
          <Text size="sm" fw={600}>Tasks</Text>
          <Button size="compact-xs" variant="subtle" onClick={() => setTasksOpen((o) => !o)} aria-expanded={tasksOpen}>
            {tasksOpen ? 'Hide' : 'Show'}
          </Button>
        </Group>
        {tasksOpen && <TasksPanel height={tasksHeight} />}
      </AppShell.Footer>
    </AppShell>
  );
}

const ConsoleWindow = lazy(() => import('./consoles/ConsoleWindow'));

export function App() {
  const { session } = useSession();
  const path = usePath();
  if (!session) return <Login />;
  // A console opened in its own window: just the screen.
  const m = /^\/console\/qemu\/(\d+)$/.exec(path);
  if (m)
    return (
      <Suspense fallback={<Loader m="md" />}>
        <ConsoleWindow vmid={Number(m[1])} />
      </Suspense>
    );
  return <Shell />;
}
