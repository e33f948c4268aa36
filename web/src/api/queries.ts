// TanStack Query hooks, one per API read. Keys are arrays starting with the
// resource kind, so live updates can invalidate a whole kind at once.
import { useQuery } from '@tanstack/react-query';
import { get } from './client';
import { useStreaming } from './streaming';
import type {
  ACLEntry, CT, CTSnapshot, CTStatus, Group, NodeInfo, NodeStatus, Permissions, Realm, Resource, Role, Storage, StorageStatus, Task, Token, User,
  VersionInfo, VM, VMSnapshot, VMStatus, Volume,
} from './types';

export const keys = {
  resources: ['resources'] as const,
  permissions: ['permissions'] as const,
  tasks: ['tasks'] as const,
  vm: (id: number) => ['vms', id, 'config'] as const,
  vmStatus: (id: number) => ['vms', id, 'status'] as const,
  snapshots: (id: number) => ['vms', id, 'snapshots'] as const,
  nodes: ['nodes'] as const,
  nodeStatus: (n: string) => ['nodes', n, 'status'] as const,
  storage: ['storage'] as const,
  nodeStorage: (n: string) => ['storage', 'node', n] as const,
  storageStatus: (n: string, s: string) => ['storage', 'node', n, s, 'status'] as const,
  content: (n: string, s: string) => ['storage', 'node', n, s, 'content'] as const,
  access: (what: string) => ['access', what] as const,
  ct: (id: number) => ['containers', id, 'config'] as const,
  ctStatus: (id: number) => ['containers', id, 'status'] as const,
  ctSnapshots: (id: number) => ['containers', id, 'snapshots'] as const,
};

export const useResources = () => {
  const live = useStreaming();
  return useQuery({ queryKey: keys.resources, queryFn: () => get<Resource[]>('/cluster/resources'), refetchInterval: live ? false : 30_000 });
};
export const usePermissions = () => useQuery({ queryKey: keys.permissions, queryFn: () => get<Permissions>('/access/permissions') });
export const useVersion = () => useQuery({ queryKey: ['version'], queryFn: () => get<VersionInfo>('/version'), staleTime: Infinity });

export const useVM = (id: number) => useQuery({ queryKey: keys.vm(id), queryFn: () => get<VM>(`/vms/${id}/config`) });
export const useVMStatus = (id: number) =>
  useQuery({ queryKey: keys.vmStatus(id), queryFn: () => get<VMStatus>(`/vms/${id}/status`), refetchInterval: 5_000 });
export const useSnapshots = (id: number) =>
  useQuery({ queryKey: keys.snapshots(id), queryFn: () => get<VMSnapshot[]>(`/vms/${id}/snapshot`), enabled: id > 0 });

export const useNodes = () => useQuery({ queryKey: keys.nodes, queryFn: () => get<NodeInfo[]>('/nodes') });
export const useNodeStatus = (n: string) =>
  useQuery({ queryKey: keys.nodeStatus(n), queryFn: () => get<NodeStatus>(`/nodes/${n}/status`), refetchInterval: 10_000 });

export const useStorageDefs = () => useQuery({ queryKey: keys.storage, queryFn: () => get<Storage[]>('/storage') });
export const useNodeStorage = (n: string, enabled = true) =>
  useQuery({ queryKey: keys.nodeStorage(n), queryFn: () => get<StorageStatus[]>(`/nodes/${n}/storage`), enabled: enabled && !!n });
export const useStorageStatus = (n: string, s: string) =>
  useQuery({ queryKey: keys.storageStatus(n, s), queryFn: () => get<StorageStatus>(`/nodes/${n}/storage/${s}/status`), refetchInterval: 15_000 });
export const useContent = (n: string, s: string, content?: string) =>
  useQuery({
    queryKey: [...keys.content(n, s), content ?? ''],
    queryFn: () => get<Volume[]>(`/nodes/${n}/storage/${s}/content`, { content }),
    enabled: !!n && !!s,
  });

/** Without the event stream, tasks refresh quickly while any runs, slowly otherwise. */
export const useTasks = () => {
  const live = useStreaming();
  return useQuery({
    queryKey: keys.tasks,
    queryFn: () => get<Task[]>('/tasks', { limit: 50 }),
    refetchInterval: (q) => (live ? false : q.state.data?.some((t) => t.status === 'running') ? 1_500 : 5_000),
  });
};

export const useUsers = () => useQuery({ queryKey: keys.access('users'), queryFn: () => get<User[]>('/access/users') });
export const useGroups = () => useQuery({ queryKey: keys.access('groups'), queryFn: () => get<Group[]>('/access/groups') });
export const useRoles = () => useQuery({ queryKey: keys.access('roles'), queryFn: () => get<Role[]>('/access/roles') });
export const useACL = () => useQuery({ queryKey: keys.access('acl'), queryFn: () => get<ACLEntry[]>('/access/acl') });
export const useRealms = () => useQuery({ queryKey: keys.access('realms'), queryFn: () => get<Realm[]>('/access/realms') });
export const useTokens = (user: string) =>
  useQuery({ queryKey: [...keys.access('tokens'), user], queryFn: () => get<Token[]>(`/access/users/${encodeURIComponent(user)}/tokens`), enabled: !!user });

export const useCT = (id: number) => useQuery({ queryKey: keys.ct(id), queryFn: () => get<CT>(`/containers/${id}/config`) });
/** A container's status: polled for its CPU and memory figures; its state comes with events. */
export const useCTStatus = (id: number) =>
  useQuery({ queryKey: keys.ctStatus(id), queryFn: () => get<CTStatus>(`/containers/${id}/status`), refetchInterval: 5_000 });
export const useCTSnapshots = (id: number) =>
  useQuery({ queryKey: keys.ctSnapshots(id), queryFn: () => get<CTSnapshot[]>(`/containers/${id}/snapshot`), enabled: id > 0 });
