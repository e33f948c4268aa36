// A task's log. A running task is followed over SSE (GET .../log?follow=1:
// "line" events, then "end" with the final task); an ended one is read once.
import { useEffect, useRef, useState } from 'react';
import { Badge, Group, Modal, Stack, Text } from '@mantine/core';
import { useQueryClient } from '@tanstack/react-query';
import { get, url } from '../api/client';
import { keys } from '../api/queries';
import type { Task, TaskLogLine } from '../api/types';
import { taskLabel, time } from '../lib/format';

export function statusBadge(status: string) {
  const color = status === 'running' ? 'blue' : status === 'ok' ? 'green' : status === 'stopped' ? 'gray' : 'red';
  return <Badge color={color} variant="light" size="sm">{status}</Badge>;
}

export function useTaskLog(task: Task | null) {
  const [lines, setLines] = useState<TaskLogLine[]>([]);
  const [final, setFinal] = useState<Task | null>(null);
  const [error, setError] = useState('');
  const qc = useQueryClient();
  useEffect(() => {
    setLines([]);
    setFinal(null);
    setError('');
    if (!task) return;
    const id = encodeURIComponent(task.id);
    if (task.status !== 'running') {
      get<TaskLogLine[]>(`/tasks/${id}/log`, { limit: 100000 }).then(setLines, (e) => setError(String(e.message ?? e)));
      return;
    }
    const es = new EventSource(url(`/tasks/${id}/log`, { follow: 1 }));
    const add = (ev: MessageEvent) => {
      const l = JSON.parse(ev.data) as TaskLogLine;
      setLines((prev) => (prev.length && prev[prev.length - 1].n >= l.n ? prev : [...prev, l]));
    };
    es.addEventListener('line', add);
    es.onmessage = add;
    es.addEventListener('end', (ev) => {
      setFinal(JSON.parse((ev as MessageEvent).data));
      es.close();
      qc.invalidateQueries({ queryKey: keys.tasks });
    });
    es.addEventListener('error', (ev) => {
      const data = (ev as MessageEvent).data;
      if (data) setError(JSON.parse(data).detail ?? 'error');
      es.close();
    });
    return () => es.close();
  }, [task?.id, task?.status === 'running', qc]); // eslint-disable-line react-hooks/exhaustive-deps
  return { lines, final, error };
}

export function TaskLogModal({ task, onClose }: { task: Task | null; onClose: () => void }) {
  const { lines, final, error } = useTaskLog(task);
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
