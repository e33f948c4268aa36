// Keeps the UI current from the daemon's event stream (GET /api/v1/events,
// SSE). Events are named by type ("guest.state", "task.finished", ...), so
// each type gets its own listener. A guest's new state is written straight
// into the cached lists (visible at once, no refetch); everything else marks
// the queries of its resource kind stale, batched so a burst of events costs
// one refetch per active query. While the stream delivers, the lists stop
// polling. Without it the tasks panel polls gently and a task that ends
// invalidates what tasks change (guests, storage).
import { useEffect, useRef } from 'react';
import { useQueryClient, type QueryClient } from '@tanstack/react-query';
import { API } from './client';
import { useTasks } from './queries';
import { setStreaming } from './streaming';
import type { Resource, Task } from './types';

/** One event of the stream (api.Event). */
export interface LiveEvent {
  id?: string;
  type: string;
  node?: string;
  vmid?: number;
  guest_type?: string;
  name?: string;
  status?: string;
  previous?: string;
  storage?: string;
  object?: string;
  deleted?: boolean;
  task?: Task;
}

/** The event types the stream sends (api/events.go). */
export const eventTypes = [
  'guest.created', 'guest.deleted', 'guest.state', 'guest.config', 'task.started', 'task.finished',
  'node.joined', 'node.left', 'node.online', 'node.offline', 'storage.changed', 'network.changed', 'access.changed', 'reset',
];

/** Query key prefixes to invalidate for a task of this kind. */
export function invalidationsFor(kind: string): string[][] {
  const k = kind.toLowerCase();
  if (k.startsWith('qm') || k.startsWith('vm') || k.startsWith('qemu')) return [['resources'], ['vms'], ['storage']];
  if (k.startsWith('lxc') || k.startsWith('vz') || k.startsWith('container') || k.startsWith('ct')) return [['resources'], ['containers'], ['storage']];
  if (k.startsWith('storage') || k.startsWith('volume') || k.startsWith('download') || k.startsWith('upload') || k.startsWith('img') || k.startsWith('template'))
    return [['storage'], ['resources']];
  if (k.startsWith('node')) return [['nodes'], ['resources']];
  if (k.startsWith('access') || k.startsWith('acl') || k.startsWith('user')) return [['access'], ['permissions'], ['resources']];
  if (k.startsWith('net') || k.startsWith('firewall')) return [['network'], ['firewall']];
  return [['resources'], ['vms'], ['storage']];
}

const guestKind = (ev: LiveEvent) => (ev.guest_type === 'lxc' ? 'containers' : 'vms');

/** Query key prefixes an event makes stale ('*' = everything). */
export function keysForEvent(ev: LiveEvent): (string | number)[][] {
  switch (ev.type) {
    case 'guest.state':
      // The list is patched at once; its refetch still follows, so a fetch
      // that was in flight before the change can't leave the old state.
      return ev.vmid ? [[guestKind(ev), ev.vmid], ['resources']] : [['resources']];
    case 'guest.config':
      return ev.vmid ? [[guestKind(ev), ev.vmid], ['resources']] : [['resources']];
    case 'guest.created':
    case 'guest.deleted':
      return [['resources'], [guestKind(ev)]];
    case 'task.started':
      return [['tasks']];
    case 'task.finished':
      return [['tasks'], ...(ev.task ? invalidationsFor(ev.task.type).filter((k) => k[0] === 'storage') : [])];
    case 'storage.changed':
      return [['storage'], ['resources']];
    case 'network.changed':
      return [['network'], ['firewall']];
    case 'access.changed':
      return [['access'], ['permissions'], ['resources']];
    case 'reset':
      return [['*']];
    default:
      if (ev.type.startsWith('node.')) return [['nodes'], ['resources']];
      return [];
  }
}

/** The resource list with one event applied, or the same list when it changes nothing. */
export function patchResources(list: Resource[] | undefined, ev: LiveEvent): Resource[] | undefined {
  if (!list || !ev.vmid) return list;
  if (ev.type === 'guest.state' && ev.status) {
    let hit = false;
    const out = list.map((r) => (r.vmid === ev.vmid && r.status !== ev.status ? ((hit = true), { ...r, status: ev.status! }) : r));
    return hit ? out : list;
  }
  if (ev.type === 'guest.deleted') {
    const out = list.filter((r) => r.vmid !== ev.vmid || r.type === 'node' || r.type === 'storage');
    return out.length === list.length ? list : out;
  }
  return list;
}

/** The task list with a task event applied (newest first, as the API lists them). */
export function patchTasks(list: Task[] | undefined, ev: LiveEvent): Task[] | undefined {
  if (!list || !ev.task) return list;
  const i = list.findIndex((t) => t.id === ev.task!.id);
  if (i < 0) return [ev.task, ...list].slice(0, 50);
  const out = list.slice();
  out[i] = ev.task;
  return out;
}

/** Applies one event to the cache: direct patches now, invalidations through stale(). */
export function applyEvent(qc: QueryClient, ev: LiveEvent, stale: (key: (string | number)[]) => void) {
  if (ev.type === 'guest.state' || ev.type === 'guest.deleted') {
    qc.setQueryData<Resource[]>(['resources'], (l) => patchResources(l, ev));
    if (ev.type === 'guest.state' && ev.vmid && ev.status) {
      qc.setQueryData<{ status: string }>([guestKind(ev), ev.vmid, 'status'], (s) => (s ? { ...s, status: ev.status! } : s));
    }
  }
  if (ev.type.startsWith('task.')) qc.setQueryData<Task[]>(['tasks'], (l) => patchTasks(l, ev));
  for (const k of keysForEvent(ev)) stale(k);
}

/** Tasks that were running in prev and are not any more in next. */
export function endedTasks(prev: Map<string, string>, next: Task[]): Task[] {
  return next.filter((t) => prev.get(t.id) === 'running' && t.status !== 'running');
}

// Invalidations are gathered for this long, then sent as one batch.
const batchMs = 150;

export function useLiveUpdates(enabled: boolean) {
  const qc = useQueryClient();
  const tasks = useTasks();
  const seen = useRef(new Map<string, string>());
  const streaming = useRef(false);

  useEffect(() => {
    if (!enabled || typeof EventSource === 'undefined') return;
    const es = new EventSource(`${API}/events`);
    const pending = new Map<string, (string | number)[]>();
    let timer: ReturnType<typeof setTimeout> | undefined;
    const flush = () => {
      timer = undefined;
      if (pending.has('*')) qc.invalidateQueries();
      else for (const k of pending.values()) qc.invalidateQueries({ queryKey: k });
      pending.clear();
    };
    const stale = (k: (string | number)[]) => {
      pending.set(JSON.stringify(k), k);
      timer ??= setTimeout(flush, batchMs);
    };
    const up = () => {
      streaming.current = true;
      setStreaming(true);
    };
    const onEvent = (msg: MessageEvent) => {
      up();
      let ev: LiveEvent;
      try {
        ev = JSON.parse(msg.data);
      } catch {
        ev = { type: msg.type };
      }
      ev.type ||= msg.type;
      applyEvent(qc, ev, stale);
    };
    for (const t of eventTypes) es.addEventListener(t, onEvent as EventListener);
    es.onmessage = onEvent;
    es.onopen = up;
    es.onerror = () => {
      // No stream on this daemon (404, 409) or it went away: polling and the
      // task fallback cover it; EventSource reconnects by itself after a
      // drop, resuming from the last event ID.
      if (!streaming.current) es.close();
      streaming.current = false;
      setStreaming(false);
    };
    return () => {
      es.close();
      if (timer) clearTimeout(timer);
      setStreaming(false);
    };
  }, [enabled, qc]);

  useEffect(() => {
    if (!tasks.data) return;
    // With the stream, guest and task events did this already.
    if (!streaming.current) for (const t of endedTasks(seen.current, tasks.data)) invalidate(qc, t.type);
    const next = new Map<string, string>();
    for (const t of tasks.data) next.set(t.id, t.status);
    seen.current = next;
  }, [tasks.data, qc]);
}

function invalidate(qc: QueryClient, kind: string) {
  for (const key of invalidationsFor(kind)) qc.invalidateQueries({ queryKey: key });
}
