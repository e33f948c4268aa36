// A task's log. A running task is followed over SSE (GET .../log?follow=1:
// "line" events, then "end" with the final task); an ended one is read once.
import { useEffect, useRef, useState } from 'react';
import { Badge, Group, Modal, Stack, Text } from '@mantine/core';
import { useQueryClient } from '@tanstack/react-query';
import { get, url } from '../api/client';
import { keys, useTasks } from '../api/queries';
import type { Task, TaskLogLine } from '../api/types';
import { taskLabel, time } from '../lib/format';

export function statusBadge(status: string) {
  const color = status === 'running' ? 'blue' : status === 'ok' ? 'green' : status === 'stopped' ? 'gray' : 'red';
  return <Badge color={color} variant="light" size="sm">{status}</Badge>;
}

/**
 * The log of a task. A running task is followed over SSE; if the stream
 * drops before the "end" event, it is resumed from the next line (a few
 * times), and once the task has ended the whole log is read once more, so
 * the view never stops short of the task's last line.
 */
export function useTaskLog(task: Task | null, endedElsewhere = false) {
  const [lines, setLines] = useState<TaskLogLine[]>([]);
  const [final, setFinal] = useState<Task | null>(null);
  const [error, setError] = useState('');
  const qc = useQueryClient();
  const id = task?.id;
  const running = task?.status === 'running';
  useEffect(() => {
    setLines([]);
    setFinal(null);
    setError('');
    if (!id) return;
    const enc = encodeURIComponent(id);
    let closed = false;
    let next = 0; // the next line number wanted
    let es: EventSource | null = null;
    let retries = 0;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const add = (ls: TaskLogLine[]) => {
      const fresh = ls.filter((l) => l.n >= next);
      if (!fresh.length) return;
      next = fresh[fresh.length - 1].n + 1;
      setLines((prev) => [...prev, ...fresh]);
    };
    const readAll = async () => {
      try {
        add(await get<TaskLogLine[]>(`/tasks/${enc}/log`, { start: next, limit: 100000 }));
        const t = await get<Task>(`/tasks/${enc}`);
        if (!closed && t.status !== 'running') setFinal(t);
      } catch (e) {
        if (!closed) setError((e as Error).message);
      }
    };
    const follow = () => {
      es = new EventSource(url(`/tasks/${enc}/log`, { follow: 1, start: next || undefined }));
      const onLine = (ev: MessageEvent) => add([JSON.parse(ev.data) as TaskLogLine]);
      es.addEventListener('line', onLine);
      es.onmessage = onLine;
      es.addEventListener('end', (ev) => {
        es?.close();
        setFinal(JSON.parse((ev as MessageEvent).data));
        qc.invalidateQueries({ queryKey: keys.tasks });
      });
      es.addEventListener('error', (ev) => {
        es?.close();
        const data = (ev as MessageEvent).data;
        if (data) {
          setError(JSON.parse(data).detail ?? 'error');
          return;
        }
        // The connection dropped: resume, or read what is there.
        if (closed) return;
        if (retries++ < 5) timer = setTimeout(follow, 500 * retries);
        else void readAll();
      });
    };
    if (running) follow();
    else void readAll();
    return () => {
      closed = true;
      clearTimeout(timer);
      es?.close();
    };
  }, [id, running, qc]);
  // The tasks list saw the task end but the stream did not say so: read it all.
  useEffect(() => {
    if (!id || !endedElsewhere || final) return;
    const t = setTimeout(async () => {
      try {
        const enc = encodeURIComponent(id);
        const [all, t2] = await Promise.all([get<TaskLogLine[]>(`/tasks/${enc}/log`, { limit: 100000 }), get<Task>(`/tasks/${enc}`)]);
        setLines(all);
        setFinal(t2);
      } catch (e) {
        setError((e as Error).message);
      }
    }, 2000);
    return () => clearTimeout(t);
  }, [id, endedElsewhere, final]);
  return { lines, final, error };
}

export function TaskLogModal({ task, onClose }: { task: Task | null; onClose: () => void }) {
  const tasks = useTasks();
  const listed = tasks.data?.find((t) => t.id === task?.id);
  const { lines, final, error } = useTaskLog(task, !!listed && listed.status !== 'running');
  const box = useRef<HTMLDivElement>(null);
  const [follow, setFollow] = useState(true);
  useEffect(() => {
    if (follow && box.current) box.current.scrollTop = box.current.scrollHeight;
  }, [lines, follow]);
  const t = final ?? task;
  return (
    <Modal opened={!!task} onClose={onClose} title={t ? `Task: ${taskLabel(t)}` : ''} size="xl">
      {t && (
        <Stack gap="xs">
          <Group gap="xs">
            {statusBadge(t.status)}
            <Text size="sm" c="dimmed">{t.node} · {t.user} · {time(t.start_time)}{t.end_time ? ` → ${time(t.end_time)}` : ''}</Text>
          </Group>
          {t.exit_message && <Text size="sm" c={t.status === 'ok' ? undefined : 'red'}>{t.exit_message}</Text>}
          {error && <Text size="sm" c="red">{error}</Text>}
          <div
            ref={box}
            className="log-view"
            style={{ height: 360 }}
            data-testid="task-log"
            onScroll={(e) => {
              const el = e.currentTarget;
              setFollow(el.scrollTop + el.clientHeight >= el.scrollHeight - 8);
            }}
          >
            {lines.map((l) => l.t).join('\n') || (t.status === 'running' ? 'waiting for output…' : 'no output')}
          </div>
        </Stack>
      )}
    </Modal>
  );
}
