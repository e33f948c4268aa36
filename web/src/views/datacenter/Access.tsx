// Users, groups, roles, ACL entries, API tokens and realms. Each list shows
// what the caller may see (the server filters); the edit controls show when
// the caller holds the privilege the server will check.
import { useState, type ReactNode } from 'react';
import { Alert, Badge, Button, Checkbox, Code, Group, Modal, MultiSelect, PasswordInput, Select, Stack, Table, Text, TextInput } from '@mantine/core';
import { useMutation, useQueryClient } from '@tanstack/react-query';
import { notifications } from '@mantine/notifications';
import { ApiError, del, errorText, post, put } from '../../api/client';
import { useACL, useGroups, usePermissions, useRealms, useRoles, useTokens, useUsers } from '../../api/queries';
import type { ACLEntry, TokenSecret, User } from '../../api/types';
import { useSession } from '../../auth/session';
import { can } from '../../lib/perms';
import { time } from '../../lib/format';

function useAccessMutation<V>(fn: (v: V) => Promise<unknown>, done?: string) {
  const qc = useQueryClient();
  return useMutation({
    mutationFn: fn,
    onSuccess: () => {
      qc.invalidateQueries({ queryKey: ['access'] });
      qc.invalidateQueries({ queryKey: ['permissions'] });
      if (done) notifications.show({ message: done, autoClose: 2000 });
    },
    onError: (e) => notifications.show({ color: 'red', title: 'Failed', message: errorText(e) }),
  });
}

function FormModal({ title, open, onClose, onSubmit, busy, error, children }: {
  title: string; open: boolean; onClose: () => void; onSubmit: () => void; busy: boolean; error?: unknown; children: ReactNode;
}) {
  return (
    <Modal opened={open} onClose={onClose} title={title}>
      <form onSubmit={(e) => { e.preventDefault(); onSubmit(); }}>
        <Stack>
          {children}
          {error != null && !(error instanceof ApiError && error.errors.length) && <Alert color="red">{errorText(error)}</Alert>}
          <Group justify="flex-end"><Button variant="default" onClick={onClose}>Cancel</Button><Button type="submit" loading={busy}>Save</Button></Group>
        </Stack>
      </form>
    </Modal>
  );
}

const fe = (e: unknown, f: string) => (e instanceof ApiError ? e.fieldErrors()[f] : undefined);

export function UsersTab() {
  const users = useUsers();
  const groups = useGroups();
  const perms = usePermissions();
  const mayCreate = can(perms.data, '/access/users', 'User.Modify');
  const [creating, setCreating] = useState(false);
  const [pw, setPw] = useState<string | null>(null);
  const [editing, setEditing] = useState<User | null>(null);
  const [form, setForm] = useState({ userid: '', password: '', groups: [] as string[], email: '', comment: '' });
  const create = useAccessMutation(() => post('/access/users', { ...form, password: form.password || undefined, email: form.email || undefined }), 'User created');
  const remove = useAccessMutation((u: string) => del(`/access/users/${encodeURIComponent(u)}`), 'User deleted');
  const toggle = useAccessMutation((u: { userid: string; enabled: boolean }) => put(`/access/users/${encodeURIComponent(u.userid)}`, { enabled: !u.enabled }));
  return (
    <Stack>
      {mayCreate && <Group><Button size="xs" onClick={() => setCreating(true)}>Add user</Button></Group>}
      <Table fz="sm" striped aria-label="Users">
        <Table.Thead><Table.Tr><Table.Th>User</Table.Th><Table.Th>Name</Table.Th><Table.Th>Groups</Table.Th><Table.Th>Enabled</Table.Th><Table.Th>Expires</Table.Th><Table.Th /></Table.Tr></Table.Thead>
        <Table.Tbody>
          {(users.data ?? []).map((u) => {
            const mayEdit = can(perms.data, `/access/users/${u.userid}`, 'User.Modify');
            return (
              <Table.Tr key={u.userid}>
                <Table.Td>{u.userid}</Table.Td>
                <Table.Td>{[u.firstname, u.lastname].filter(Boolean).join(' ')}</Table.Td>
                <Table.Td>{(u.groups ?? []).join(', ')}</Table.Td>
                <Table.Td>{u.enabled ? 'yes' : <Badge color="gray">disabled</Badge>}</Table.Td>
                <Table.Td>{u.expire ? time(u.expire) : 'never'}</Table.Td>
                <Table.Td>
                  <Group gap={4} justify="flex-end">
                    {mayEdit && <Button size="compact-xs" variant="subtle" onClick={() => setEditing(u)}>Edit</Button>}
                    <Button size="compact-xs" variant="subtle" onClick={() => setPw(u.userid)}>Password</Button>
                    {mayEdit && <Button size="compact-xs" variant="subtle" onClick={() => toggle.mutate(u)}>{u.enabled ? 'Disable' : 'Enable'}</Button>}
                    {mayEdit && <Button size="compact-xs" variant="subtle" color="red" onClick={() => remove.mutate(u.userid)}>Delete</Button>}
                  </Group>
                </Table.Td>
              </Table.Tr>
            );
          })}
        </Table.Tbody>
      </Table>
      <FormModal title="Add user" open={creating} onClose={() => setCreating(false)} busy={create.isPending} error={create.error}
        onSubmit={() => create.mutate(undefined, { onSuccess: () => setCreating(false) })}>
        <TextInput label="User ID" description="name@realm" value={form.userid} onChange={(e) => setForm({ ...form, userid: e.currentTarget.value })} error={fe(create.error, 'userid')} data-autofocus />
        <PasswordInput label="Password" description="corral realm only" value={form.password} onChange={(e) => setForm({ ...form, password: e.currentTarget.value })} error={fe(create.error, 'password')} />
        <MultiSelect label="Groups" data={(groups.data ?? []).map((g) => g.groupid)} value={form.groups} onChange={(g) => setForm({ ...form, groups: g })} />
        <TextInput label="E-mail" value={form.email} onChange={(e) => setForm({ ...form, email: e.currentTarget.value })} error={fe(create.error, 'email')} />
        <TextInput label="Comment" value={form.comment} onChange={(e) => setForm({ ...form, comment: e.currentTarget.value })} />
      </FormModal>
      {pw && <PasswordModal userid={pw} onClose={() => setPw(null)} />}
      {editing && <EditUserModal user={editing} groups={(groups.data ?? []).map((g) => g.groupid)} onClose={() => setEditing(null)} />}
    </Stack>
  );
}

function EditUserModal({ user, groups, onClose }: { user: User; groups: string[]; onClose: () => void }) {
  const [f, setF] = useState({
    firstname: user.firstname ?? '', lastname: user.lastname ?? '', email: user.email ?? '', comment: user.comment ?? '', groups: user.groups ?? [],
  });
  const save = useAccessMutation(() => put(`/access/users/${encodeURIComponent(user.userid)}`, f, user.digest ? { 'If-Match': user.digest } : undefined), 'User saved');
  const text = (k: 'firstname' | 'lastname' | 'email' | 'comment', label: string) => (
    <TextInput label={label} value={f[k]} onChange={(e) => setF({ ...f, [k]: e.currentTarget.value })} error={fe(save.error, k)} />
  );
  return (
    <FormModal title={`Edit ${user.userid}`} open onClose={onClose} busy={save.isPending} error={save.error} onSubmit={() => save.mutate(undefined, { onSuccess: onClose })}>
      {text('firstname', 'First name')}
      {text('lastname', 'Last name')}
      {text('email', 'E-mail')}
      <MultiSelect label="Groups" data={groups} value={f.groups} onChange={(g) => setF({ ...f, groups: g })} error={fe(save.error, 'groups')} />
      {text('comment', 'Comment')}
    </FormModal>
  );
}

function PasswordModal({ userid, onClose }: { userid: string; onClose: () => void }) {
  const [p, setP] = useState('');
  const save = useAccessMutation(() => put(`/access/users/${encodeURIComponent(userid)}`, { password: p }), 'Password changed');
  return (
    <FormModal title={`Password of ${userid}`} open onClose={onClose} busy={save.isPending} error={save.error} onSubmit={() => save.mutate(undefined, { onSuccess: onClose })}>
      <PasswordInput label="New password" value={p} onChange={(e) => setP(e.currentTarget.value)} error={fe(save.error, 'password')} data-autofocus />
    </FormModal>
  );
}

export function GroupsTab() {
  const groups = useGroups();
  const perms = usePermissions();
  const may = can(perms.data, '/access/groups', 'Group.Allocate');
  const [open, setOpen] = useState(false);
  const [g, setG] = useState({ groupid: '', comment: '' });
  const create = useAccessMutation(() => post('/access/groups', g), 'Group created');
  const remove = useAccessMutation((id: string) => del(`/access/groups/${encodeURIComponent(id)}`), 'Group deleted');
  return (
    <Stack>
      {may && <Group><Button size="xs" onClick={() => setOpen(true)}>Add group</Button></Group>}
      <Table fz="sm" striped aria-label="Groups">
        <Table.Thead><Table.Tr><Table.Th>Group</Table.Th><Table.Th>Members</Table.Th><Table.Th>Comment</Table.Th><Table.Th /></Table.Tr></Table.Thead>
        <Table.Tbody>
          {(groups.data ?? []).map((x) => (
            <Table.Tr key={x.groupid}>
              <Table.Td>{x.groupid}</Table.Td><Table.Td>{(x.members ?? []).join(', ')}</Table.Td><Table.Td>{x.comment}</Table.Td>
              <Table.Td>{may && <Button size="compact-xs" variant="subtle" color="red" onClick={() => remove.mutate(x.groupid)}>Delete</Button>}</Table.Td>
            </Table.Tr>
          ))}
        </Table.Tbody>
      </Table>
      <FormModal title="Add group" open={open} onClose={() => setOpen(false)} busy={create.isPending} error={create.error} onSubmit={() => create.mutate(undefined, { onSuccess: () => setOpen(false) })}>
        <TextInput label="Group ID" value={g.groupid} onChange={(e) => setG({ ...g, groupid: e.currentTarget.value })} error={fe(create.error, 'groupid')} data-autofocus />
        <TextInput label="Comment" value={g.comment} onChange={(e) => setG({ ...g, comment: e.currentTarget.value })} />
      </FormModal>
    </Stack>
  );
}

export function RolesTab() {
  const roles = useRoles();
  const perms = usePermissions();
  const may = can(perms.data, '/access', 'Sys.Modify');
  const allPrivs = [...new Set((roles.data ?? []).flatMap((r) => r.privs ?? []))].sort();
  const [edit, setEdit] = useState<{ roleid: string; privs: string[]; isNew: boolean } | null>(null);
  const save = useAccessMutation(() =>
    edit!.isNew ? post('/access/roles', { roleid: edit!.roleid, privs: edit!.privs }) : put(`/access/roles/${encodeURIComponent(edit!.roleid)}`, { privs: edit!.privs }), 'Role saved');
  const remove = useAccessMutation((id: string) => del(`/access/roles/${encodeURIComponent(id)}`), 'Role deleted');
  return (
    <Stack>
      {may && <Group><Button size="xs" onClick={() => setEdit({ roleid: '', privs: [], isNew: true })}>Add role</Button></Group>}
      <Table fz="sm" striped aria-label="Roles">
        <Table.Thead><Table.Tr><Table.Th>Role</Table.Th><Table.Th>Privileges</Table.Th><Table.Th /></Table.Tr></Table.Thead>
        <Table.Tbody>
          {(roles.data ?? []).map((r) => (
            <Table.Tr key={r.roleid}>
              <Table.Td>{r.roleid} {r.builtin && <Badge size="xs" variant="outline">built-in</Badge>}</Table.Td>
              <Table.Td><Text size="xs">{(r.privs ?? []).join(' ')}</Text></Table.Td>
              <Table.Td>
                {may && !r.builtin && (
                  <Group gap={4} wrap="nowrap">
                    <Button size="compact-xs" variant="subtle" onClick={() => setEdit({ roleid: r.roleid, privs: r.privs ?? [], isNew: false })}>Edit</Button>
                    <Button size="compact-xs" variant="subtle" color="red" onClick={() => remove.mutate(r.roleid)}>Delete</Button>
                  </Group>
                )}
              </Table.Td>
            </Table.Tr>
          ))}
        </Table.Tbody>
      </Table>
      {edit && (
        <FormModal title={edit.isNew ? 'Add role' : `Edit role ${edit.roleid}`} open onClose={() => setEdit(null)} busy={save.isPending} error={save.error} onSubmit={() => save.mutate(undefined, { onSuccess: () => setEdit(null) })}>
          {edit.isNew && <TextInput label="Role ID" value={edit.roleid} onChange={(e) => setEdit({ ...edit, roleid: e.currentTarget.value })} error={fe(save.error, 'roleid')} data-autofocus />}
          <MultiSelect label="Privileges" data={allPrivs} value={edit.privs} onChange={(p) => setEdit({ ...edit, privs: p })} searchable error={fe(save.error, 'privs')} />
        </FormModal>
      )}
    </Stack>
  );
}

export function ACLTab() {
  const acl = useACL();
  const roles = useRoles();
  const users = useUsers();
  const groups = useGroups();
  const [open, setOpen] = useState(false);
  const [e, setE] = useState({ path: '/', who: 'user', name: '', role: '', propagate: true });
  const entry = (): ACLEntry => ({ path: e.path, role: e.role, propagate: e.propagate, [e.who]: e.name });
  const add = useAccessMutation(() => put('/access/acl', { entries: [entry()] }), 'Permission added');
  const remove = useAccessMutation((x: ACLEntry) => put('/access/acl', { entries: [x], delete: true }), 'Permission removed');
  const names = e.who === 'user' ? (users.data ?? []).map((u) => u.userid) : e.who === 'group' ? (groups.data ?? []).map((g) => g.groupid) : [];
  return (
    <Stack>
      <Group><Button size="xs" onClick={() => setOpen(true)}>Add permission</Button></Group>
      <Table fz="sm" striped aria-label="ACL">
        <Table.Thead><Table.Tr><Table.Th>Path</Table.Th><Table.Th>User / group / token</Table.Th><Table.Th>Role</Table.Th><Table.Th>Propagate</Table.Th><Table.Th /></Table.Tr></Table.Thead>
        <Table.Tbody>
          {(acl.data ?? []).map((x, i) => (
            <Table.Tr key={i}>
              <Table.Td>{x.path}</Table.Td>
              <Table.Td>{x.user ?? (x.group ? `@${x.group}` : x.token)}</Table.Td>
              <Table.Td>{x.role}</Table.Td>
              <Table.Td>{x.propagate ? 'yes' : 'no'}</Table.Td>
              <Table.Td><Button size="compact-xs" variant="subtle" color="red" onClick={() => remove.mutate(x)}>Remove</Button></Table.Td>
            </Table.Tr>
          ))}
        </Table.Tbody>
      </Table>
      <FormModal title="Add permission" open={open} onClose={() => setOpen(false)} busy={add.isPending} error={add.error} onSubmit={() => add.mutate(undefined, { onSuccess: () => setOpen(false) })}>
        <TextInput label="Path" description="/, /vms/100, /storage/local, /nodes/n1, /access/…" value={e.path} onChange={(x) => setE({ ...e, path: x.currentTarget.value })} error={fe(add.error, 'entries[0].path')} />
        <Select label="For" data={[{ value: 'user', label: 'User' }, { value: 'group', label: 'Group' }, { value: 'token', label: 'API token' }]} value={e.who} onChange={(v) => setE({ ...e, who: v ?? 'user', name: '' })} allowDeselect={false} />
        {names.length ? (
          <Select label="Name" data={names} value={e.name || null} onChange={(v) => setE({ ...e, name: v ?? '' })} searchable />
        ) : (
          <TextInput label="Name" value={e.name} onChange={(x) => setE({ ...e, name: x.currentTarget.value })} />
        )}
        <Select label="Role" data={(roles.data ?? []).map((r) => r.roleid)} value={e.role || null} onChange={(v) => setE({ ...e, role: v ?? '' })} error={fe(add.error, 'entries[0].role')} searchable />
        <Checkbox label="Propagate to paths below" checked={e.propagate} onChange={(x) => setE({ ...e, propagate: x.currentTarget.checked })} />
      </FormModal>
    </Stack>
  );
}

export function TokensTab() {
  const { session } = useSession();
  const users = useUsers();
  const [user, setUser] = useState(session?.username ?? '');
  const tokens = useTokens(user);
  const [name, setName] = useState('');
  const [privsep, setPrivsep] = useState(true);
  const [open, setOpen] = useState(false);
  const [secret, setSecret] = useState<TokenSecret | null>(null);
  const create = useAccessMutation(async () => setSecret(await post<TokenSecret>(`/access/users/${encodeURIComponent(user)}/tokens/${encodeURIComponent(name)}`, { privsep })));
  const remove = useAccessMutation((n: string) => del(`/access/users/${encodeURIComponent(user)}/tokens/${encodeURIComponent(n)}`), 'Token deleted');
  return (
    <Stack>
      <Group align="end">
        <Select label="User" data={(users.data ?? []).map((u) => u.userid)} value={user} onChange={(v) => setUser(v ?? '')} searchable allowDeselect={false} />
        <Button size="xs" onClick={() => setOpen(true)}>Add token</Button>
      </Group>
      <Table fz="sm" striped aria-label="API tokens">
        <Table.Thead><Table.Tr><Table.Th>Token</Table.Th><Table.Th>Privilege separation</Table.Th><Table.Th>Expires</Table.Th><Table.Th>Comment</Table.Th><Table.Th /></Table.Tr></Table.Thead>
        <Table.Tbody>
          {(tokens.data ?? []).map((t) => (
            <Table.Tr key={t.tokenid}>
              <Table.Td>{t.tokenid}</Table.Td><Table.Td>{t.privsep ? 'yes' : 'no'}</Table.Td><Table.Td>{t.expire ? time(t.expire) : 'never'}</Table.Td><Table.Td>{t.comment}</Table.Td>
              <Table.Td><Button size="compact-xs" variant="subtle" color="red" onClick={() => remove.mutate(t.tokenid.split('!')[1])}>Delete</Button></Table.Td>
            </Table.Tr>
          ))}
        </Table.Tbody>
      </Table>
      <FormModal title={`New API token for ${user}`} open={open && !secret} onClose={() => setOpen(false)} busy={create.isPending} error={create.error} onSubmit={() => create.mutate(undefined)}>
        <TextInput label="Token name" value={name} onChange={(e) => setName(e.currentTarget.value)} data-autofocus />
        <Checkbox label="Privilege separation (the token gets only its own ACL entries)" checked={privsep} onChange={(e) => setPrivsep(e.currentTarget.checked)} />
      </FormModal>
      <Modal opened={!!secret} onClose={() => { setSecret(null); setOpen(false); }} title="Token created">
        <Stack>
          <Text size="sm">Copy the secret now: it is not shown again.</Text>
          <Code block>{secret ? `Authorization: CorralToken ${secret.tokenid}=${secret.secret}` : ''}</Code>
        </Stack>
      </Modal>
    </Stack>
  );
}

export function RealmsTab() {
  const realms = useRealms();
  const perms = usePermissions();
  const may = can(perms.data, '/access/realms', 'Realm.Allocate');
  const [open, setOpen] = useState(false);
  const [r, setR] = useState({ realm: '', type: 'pam', service: '', comment: '' });
  const create = useAccessMutation(() => post('/access/realms', { ...r, service: r.service || undefined }), 'Realm created');
  const remove = useAccessMutation((id: string) => del(`/access/realms/${encodeURIComponent(id)}`), 'Realm deleted');
  const makeDefault = useAccessMutation((id: string) => put(`/access/realms/${encodeURIComponent(id)}`, { default: true }), 'Default realm set');
  return (
    <Stack>
      {may && <Group><Button size="xs" onClick={() => setOpen(true)}>Add realm</Button></Group>}
      <Table fz="sm" striped aria-label="Realms">
        <Table.Thead><Table.Tr><Table.Th>Realm</Table.Th><Table.Th>Type</Table.Th><Table.Th>Default</Table.Th><Table.Th>Comment</Table.Th><Table.Th /></Table.Tr></Table.Thead>
        <Table.Tbody>
          {(realms.data ?? []).map((x) => (
            <Table.Tr key={x.realm}>
              <Table.Td>{x.realm}</Table.Td><Table.Td>{x.type}</Table.Td><Table.Td>{x.default ? 'yes' : ''}</Table.Td><Table.Td>{x.comment}</Table.Td>
              <Table.Td>
                {may && (
                  <Group gap={4} justify="flex-end" wrap="nowrap">
                    {!x.default && <Button size="compact-xs" variant="subtle" onClick={() => makeDefault.mutate(x.realm)}>Make default</Button>}
                    <Button size="compact-xs" variant="subtle" color="red" onClick={() => remove.mutate(x.realm)}>Delete</Button>
                  </Group>
                )}
              </Table.Td>
            </Table.Tr>
          ))}
        </Table.Tbody>
      </Table>
      <FormModal title="Add realm" open={open} onClose={() => setOpen(false)} busy={create.isPending} error={create.error} onSubmit={() => create.mutate(undefined, { onSuccess: () => setOpen(false) })}>
        <TextInput label="Realm" value={r.realm} onChange={(e) => setR({ ...r, realm: e.currentTarget.value })} error={fe(create.error, 'realm')} data-autofocus />
        <Select label="Type" data={['corral', 'pam']} value={r.type} onChange={(v) => setR({ ...r, type: v ?? 'pam' })} allowDeselect={false} />
        {r.type === 'pam' && <TextInput label="PAM service" value={r.service} onChange={(e) => setR({ ...r, service: e.currentTarget.value })} error={fe(create.error, 'service')} />}
        <TextInput label="Comment" value={r.comment} onChange={(e) => setR({ ...r, comment: e.currentTarget.value })} />
      </FormModal>
    </Stack>
  );
}
