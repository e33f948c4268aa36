// The bottom panel: recent tasks with live status; a click opens the log,
// which follows the task while it runs.
import { useState } from 'react';
import { Button, Group, ScrollArea, Table, Text, UnstyledButton } from '@mantine/core';
import { useMutation, useQueryClient } from '@tanstack/react-query';
import { del, errorText } from '../api/client';
import { keys, useTasks } from '../api/queries';
import type { Task } from '../api/types';
import { time } from '../lib/format';
import { statusBadge, TaskLogModal } from './TaskLog';

export function TasksPanel({ height }: { height: number }) {
  const tasks = useTasks();
  const [open, setOpen] = useState<Task | null>(null);
  const qc = useQueryClient();
  const stop = useMutation({
    mutationFn: (t: Task) => del(`/tasks/${encodeURIComponent(t.id)}`),
    onSettled: () => qc.invalidateQueries({ queryKey: keys.tasks }),
  });
  return (
    <>
      <ScrollArea h={height} data-testid="tasks-panel">
        <Table striped highlightOnHover stickyHeader verticalSpacing={2} fz="xs" aria-label="Tasks">
          <Table.Thead>
            <Table.Tr>
              <Table.Th>Start</Table.Th>
              <Table.Th>End</Table.Th>
              <Table.Th>Node</Table.Th>
              <Table.Th>User</Table.Th>
              <Table.Th>Task</Table.Th>
              <Table.Th>Status</Table.Th>
              <Table.Th />
            </Table.Tr>
          </Table.Thead>
          <Table.Tbody>
            {(tasks.data ?? []).map((t) => (
              <Table.Tr key={t.id} data-task-type={t.type} data-status={t.status}>
                <Table.Td>{time(t.start_time)}</Table.Td>
                <Table.Td>{t.end_time ? time(t.end_time) : ''}</Table.Td>
                <Table.Td>{t.node}</Table.Td>
                <Table.Td>{t.user}</Table.Td>
                <Table.Td>
                  <UnstyledButton onClick={() => setOpen(t)} fz="xs" td="underline" aria-label={`Log of ${t.type} ${t.target ?? ''}`}>
                    {t.type}{t.target ? ` ${t.target}` : ''}
                  </UnstyledButton>
                </Table.Td>
                <Table.Td>
                  <Group gap={4} wrap="nowrap">
                    {statusBadge(t.status)}
                    {t.exit_message && t.status !== 'ok' && <Text fz="xs" c="red" lineClamp={1} title={t.exit_message}>{t.exit_message}</Text>}
                  </Group>
                </Table.Td>
                <Table.Td>
                  {t.status === 'running' && (
                    <Button size="compact-xs" variant="subtle" color="red" onClick={() => stop.mutate(t)} title={stop.error ? errorText(stop.error) : 'Stop this task'}>
                      Stop
                    </Button>
                  )}
                </Table.Td>
              </Table.Tr>
            ))}
            {tasks.data?.length === 0 && (
              <Table.Tr><Table.Td colSpan={7}><Text c="dimmed" fz="xs">No tasks yet</Text></Table.Td></Table.Tr>
            )}
          </Table.Tbody>
        </Table>
      </ScrollArea>
      <TaskLogModal task={open} onClose={() => setOpen(null)} />
    </>
  );
}
