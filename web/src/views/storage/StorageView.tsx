// A storage pool on one node: usage, and its content with upload (ISO,
// container templates, ...) and delete.
import { useRef, useState } from 'react';
import { Alert, Badge, Button, Card, FileButton, Group, Modal, Progress, Select, SimpleGrid, Stack, Table, Tabs, Text, TextInput, Title } from '@mantine/core';
import { useQueryClient } from '@tanstack/react-query';
import { notifications } from '@mantine/notifications';
import { ApiError, del, errorText, post, upload } from '../../api/client';
import { keys, useContent, usePermissions, useStorageStatus } from '../../api/queries';
import type { Volume } from '../../api/types';
import { bytes, pct, time } from '../../lib/format';
import { can } from '../../lib/perms';
import { useTaskAction } from '../../lib/useTask';
import { navigate, routePath } from '../../lib/route';
import type { ViewProps } from '../registry';
import { KV } from '../vm/VMView';
import { History } from '../graphs/History';

const uploadable = ['iso', 'vztmpl', 'backup', 'snippets'];

export function StorageView({ route }: ViewProps) {
  const { node, storage } = route as Required<Pick<typeof route, 'node' | 'storage'>> & typeof route;
  const st = useStorageStatus(node, storage);
  const tab = route.tab ?? 'summary';
  return (
    <Stack>
      <Group gap="xs">
        <Title order={3}>Storage {storage} on {node}</Title>
        {st.data && <Badge color={st.data.active ? 'green' : 'red'}>{st.data.active ? 'active' : 'inactive'}</Badge>}
      </Group>
      {st.error && <Alert color="red">{errorText(st.error)}</Alert>}
      <Tabs value={tab} onChange={(t) => navigate(routePath(route.id, t && t !== 'summary' ? t : undefined))} keepMounted={false}>
        <Tabs.List>
          <Tabs.Tab value="summary">Summary</Tabs.Tab>
          <Tabs.Tab value="content">Content</Tabs.Tab>
        </Tabs.List>
        <Tabs.Panel value="summary" pt="md">
          {st.data && (
            <SimpleGrid cols={{ base: 1, md: 2 }}>
              <Card withBorder>
                <Stack gap={6}>
                  <KV k="Type" v={st.data.type} />
                  <KV k="Content" v={(st.data.content ?? []).join(', ')} />
                  <KV k="Shared" v={st.data.shared ? 'yes' : 'no'} />
                  <KV k="Enabled" v={st.data.enabled ? 'yes' : 'no'} />
                  {st.data.reason && <Text c="orange" size="sm">{st.data.reason}</Text>}
                  <Text size="sm" c="dimmed">Usage {bytes(st.data.used)} of {bytes(st.data.total)}</Text>
                  <Progress value={pct(st.data.used, st.data.total)} aria-label="Storage usage" />
                </Stack>
              </Card>
              <Card withBorder>
                <Stack gap={6}>
                  <Text fw={600}>Capabilities</Text>
                  {Object.entries(st.data.caps ?? {}).filter(([k]) => k !== '$schema').map(([k, v]) => <KV key={k} k={k} v={String(v)} />)}
                </Stack>
              </Card>
            </SimpleGrid>
          )}
          <History path={`/nodes/${node}/storage/${storage}/rrddata`} kind="storage" />
        </Tabs.Panel>
        <Tabs.Panel value="content" pt="md">
          <Content node={node} storage={storage} contentTypes={st.data?.content ?? []} />
        </Tabs.Panel>
      </Tabs>
    </Stack>
  );
}

function Content({ node, storage, contentTypes }: { node: string; storage: string; contentTypes: string[] }) {
  const content = useContent(node, storage);
  const perms = usePermissions();
  const mayWrite = can(perms.data, `/storage/${storage}`, 'Datastore.AllocateSpace');
  const qc = useQueryClient();
  const [progress, setProgress] = useState<number | null>(null);
  const [kind, setKind] = useState<string | null>(null);
  const [confirm, setConfirm] = useState<Volume | null>(null);
  const [downloading, setDownloading] = useState(false);
  const abort = useRef<() => void>(() => {});
  const kinds = contentTypes.filter((c) => uploadable.includes(c));
  const upKind = kind ?? kinds[0] ?? null;
  const refresh = () => qc.invalidateQueries({ queryKey: keys.content(node, storage) });

  const onFile = (file: File | null) => {
    if (!file || !upKind) return;
    setProgress(0);
    const u = upload(`/nodes/${node}/storage/${storage}/upload`, { content: upKind, filename: file.name }, file, setProgress);
    abort.current = u.abort;
    u.promise.then(
      () => {
        notifications.show({ message: `Uploaded ${file.name}` });
        refresh();
      },
      (e) => notifications.show({ color: 'red', title: `Upload of ${file.name} failed`, message: errorText(e) }),
    ).finally(() => setProgress(null));
  };
  const remove = async (v: Volume) => {
    try {
      await del(`/nodes/${node}/storage/${storage}/content/${encodeURIComponent(v.volid)}`);
      refresh();
    } catch (e) {
      notifications.show({ color: 'red', title: `Delete ${v.volid} failed`, message: errorText(e) });
    }
    setConfirm(null);
  };
  return (
    <Stack>
      {mayWrite && kinds.length > 0 && (
        <Group>
          <Select size="xs" data={kinds} value={upKind} onChange={setKind} aria-label="Content type" w={120} allowDeselect={false} />
          <FileButton onChange={onFile} accept={upKind === 'iso' ? '.iso,.img' : undefined}>
            {(props) => <Button size="xs" {...props} disabled={progress !== null} data-testid="upload">Upload…</Button>}
          </FileButton>
          <Button size="xs" variant="default" onClick={() => setDownloading(true)} disabled={!upKind}>Download from URL…</Button>
          {progress !== null && (
            <Group gap="xs" style={{ flex: 1 }}>
              <Progress value={progress * 100} style={{ flex: 1 }} aria-label="Upload progress" />
              <Text size="xs">{(progress * 100).toFixed(0)}%</Text>
              <Button size="compact-xs" variant="subtle" onClick={() => abort.current()}>Cancel</Button>
            </Group>
          )}
        </Group>
      )}
      {content.error && <Alert color="red">{errorText(content.error)}</Alert>}
      <Table fz="sm" striped aria-label="Content">
        <Table.Thead><Table.Tr><Table.Th>Volume</Table.Th><Table.Th>Content</Table.Th><Table.Th>Format</Table.Th><Table.Th>Size</Table.Th><Table.Th>Owner</Table.Th><Table.Th>Created</Table.Th><Table.Th /></Table.Tr></Table.Thead>
        <Table.Tbody>
          {(content.data ?? []).map((v) => (
            <Table.Tr key={v.volid}>
              <Table.Td>{v.volid}</Table.Td>
              <Table.Td>{v.content}</Table.Td>
              <Table.Td>{v.format}</Table.Td>
              <Table.Td>{bytes(v.size)}</Table.Td>
              <Table.Td>{v.vmid || ''}</Table.Td>
              <Table.Td>{time(v.ctime)}</Table.Td>
              <Table.Td>{mayWrite && <Button size="compact-xs" variant="subtle" color="red" onClick={() => setConfirm(v)}>Delete</Button>}</Table.Td>
            </Table.Tr>
          ))}
          {content.data?.length === 0 && <Table.Tr><Table.Td colSpan={7}><Text c="dimmed" size="sm">Empty</Text></Table.Td></Table.Tr>}
        </Table.Tbody>
      </Table>
      {downloading && upKind && <DownloadModal node={node} storage={storage} content={upKind} onClose={() => setDownloading(false)} />}
      <Modal opened={!!confirm} onClose={() => setConfirm(null)} title="Delete volume">
        <Stack>
          <Text size="sm">Delete {confirm?.volid}? This cannot be undone.</Text>
          <Group justify="flex-end"><Button variant="default" onClick={() => setConfirm(null)}>Cancel</Button><Button color="red" onClick={() => confirm && remove(confirm)}>Delete</Button></Group>
        </Stack>
      </Modal>
    </Stack>
  );
}

/** The file name a URL suggests (its last path segment), for the download form. */
export function fileNameOf(u: string): string {
  try {
    const last = new URL(u).pathname.split('/').filter(Boolean).pop() ?? '';
    return decodeURIComponent(last).replace(/[^A-Za-z0-9._+-]/g, '_').replace(/^[^A-Za-z0-9]+/, '');
  } catch {
    return '';
  }
}

function DownloadModal({ node, storage, content, onClose }: { node: string; storage: string; content: string; onClose: () => void }) {
  const [u, setU] = useState('');
  const [filename, setFilename] = useState('');
  const [sha256, setSha] = useState('');
  const [errs, setErrs] = useState<Record<string, string>>({});
  const dl = useTaskAction(
    () => `download ${filename}`,
    () => post(`/nodes/${node}/storage/${storage}/download-url`, { url: u, filename: filename || fileNameOf(u), content, sha256: sha256 || undefined }),
    [keys.content(node, storage)],
  );
  const submit = () => {
    const e: Record<string, string> = {};
    if (!/^https?:\/\/.+/.test(u)) e.url = 'an http:// or https:// URL';
    if (!/^[A-Za-z0-9][A-Za-z0-9._+-]*$/.test(filename || fileNameOf(u))) e.filename = 'letters, digits, . _ + -';
    if (sha256 && !/^[0-9a-fA-F]{64}$/.test(sha256)) e.sha256 = '64 hex digits';
    setErrs(e);
    if (Object.keys(e).length === 0) dl.mutate(undefined, { onSuccess: onClose, onError: (x) => setErrs(x instanceof ApiError ? x.fieldErrors() : {}) });
  };
  return (
    <Modal opened onClose={onClose} title={`Download to ${storage} (${content})`}>
      <form onSubmit={(e) => { e.preventDefault(); submit(); }}>
        <Stack>
          <TextInput label="URL" value={u} onChange={(e) => setU(e.currentTarget.value)} error={errs.url} data-autofocus />
          <TextInput label="File name" placeholder={fileNameOf(u)} value={filename} onChange={(e) => setFilename(e.currentTarget.value)} error={errs.filename} />
          <TextInput label="SHA-256 (optional)" value={sha256} onChange={(e) => setSha(e.currentTarget.value)} error={errs.sha256} />
          <Group justify="flex-end"><Button variant="default" onClick={onClose}>Cancel</Button><Button type="submit" loading={dl.isPending}>Download</Button></Group>
        </Stack>
      </form>
    </Modal>
  );
}
