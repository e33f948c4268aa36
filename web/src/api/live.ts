// Keeps the UI current. When the daemon has the event stream (GET
// /api/v1/events, SSE), each event invalidates the queries of its resource
// kind and the lists stop polling. Until then — or when the stream is not
// there — the tasks panel polls gently and a task that ends invalidates
// what tasks change (guests, storage).
import { useEffect, useRef } from 'react';
import { useQueryClient, type QueryClient } from '@tanstack/react-query';
import { API } from './client';
import { useTasks } from './queries';
import { setStreaming } from './streaming';
import type { Task } from './types';

/** Query key prefixes to invalidate for an event or task of this kind. */
export function invalidationsFor(kind: string): string[][] {
  const k = kind.toLowerCase();
  if (k.startsWith('qm') || k.startsWith('vm') || k.startsWith('qemu')) return [['resources'], ['vms'], ['storage']];
  if (k.startsWith('lxc') || k.startsWith('vz') || k.startsWith('container')) return [['resources'], ['containers'], ['storage']];
  if (k.startsWith('storage') || k.startsWith('volume') || k.startsWith('download') || k.startsWith('upload') || k.startsWith('img'))
    return [['storage'], ['resources']];
  if (k.startsWith('node')) return [['nodes'], ['resources']];
  if (k.startsWith('access') || k.startsWith('acl') || k.startsWith('user')) return [['access'], ['permissions'], ['resources']];
  if (k.startsWith('net') || k.startsWith('firewall')) return [['network'], ['firewall']];
  return [['resources'], ['vms'], ['storage']];
}

function invalidate(qc: QueryClient, kind: string) {
  for (const key of invalidationsFor(kind)) qc.invalidateQueries({ queryKey: key });
}

/** Tasks that were running in prev and are not any more in next. */
export function endedTasks(prev: Map<string, string>, next: Task[]): Task[] {
  return next.filter((t) => prev.get(t.id) === 'running' && t.status !== 'running');
}

export function useLiveUpdates(enabled: boolean) {
  const qc = useQueryClient();
  const tasks = useTasks();
  const seen = useRef(new Map<string, string>());
  const streaming = useRef(false);

  useEffect(() => {
    if (!enabled || typeof EventSource === 'undefined') return;
    const es = new EventSource(`${API}/events`);
    const onEvent = (ev: MessageEvent) => {
      streaming.current = true;
      setStreaming(true);
      let kind = ev.type;
      try {
        const d = JSON.parse(ev.data);
        kind = d.kind ?? d.type ?? d.resource ?? kind;
      } catch {
        /* not JSON: use the event name */
      }
      invalidate(qc, String(kind));
      if (String(kind).startsWith('task')) qc.invalidateQueries({ queryKey: ['tasks'] });
    };
    es.onmessage = onEvent;
    es.onopen = () => {
      streaming.current = true;
      setStreaming(true);
    };
    es.onerror = () => {
      // No stream on this daemon (404) or it went away: polling and the
      // task fallback cover it; EventSource reconnects by itself after a drop.
      if (!streaming.current) es.close();
      streaming.current = false;
      setStreaming(false);
    };
    return () => {
      es.close();
      setStreaming(false);
    };
  }, [enabled, qc]);

  useEffect(() => {
    if (!tasks.data) return;
    for (const t of endedTasks(seen.current, tasks.data)) invalidate(qc, t.type);
    const next = new Map<string, string>();
    for (const t of tasks.data) next.set(t.id, t.status);
    seen.current = next;
  }, [tasks.data, qc]);
}
