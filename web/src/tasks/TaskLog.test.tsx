import { afterEach, expect, it, vi } from 'vitest';
import { act, cleanup, renderHook, waitFor } from '@testing-library/react';
import { QueryClient, QueryClientProvider } from '@tanstack/react-query';
import type { ReactNode } from 'react';
import type { Task } from '../api/types';
import { fakeFetch } from '../test/render';
import { useTaskLog } from './TaskLog';

afterEach(() => {
  cleanup();
  vi.unstubAllGlobals();
});

/** A stand-in EventSource the test drives: every instance is recorded with its URL. */
class FakeES extends EventTarget {
  static all: FakeES[] = [];
  onmessage: ((e: MessageEvent) => void) | null = null;
  closed = false;
  constructor(public url: string) {
    super();
    FakeES.all.push(this);
  }
  close() {
    this.closed = true;
  }
  emit(type: string, data?: unknown) {
    this.dispatchEvent(new MessageEvent(type, { data: data === undefined ? undefined : JSON.stringify(data) }));
  }
}

const task: Task = { id: 'UPID:n1:1:2:sleep::u:', node: 'n1', type: 'sleep', user: 'u', status: 'running', start_time: '' };
const wrapper = ({ children }: { children: ReactNode }) => <QueryClientProvider client={new QueryClient()}>{children}</QueryClientProvider>;

it('follows a running task and resumes from the next line when the stream drops', async () => {
  FakeES.all = [];
  vi.stubGlobal('EventSource', FakeES);
  const { result } = renderHook(() => useTaskLog(task), { wrapper });
  expect(FakeES.all).toHaveLength(1);
  expect(FakeES.all[0].url).toContain('follow=1');
  act(() => {
    FakeES.all[0].emit('line', { n: 0, t: 'sleeping 3 seconds' });
    FakeES.all[0].emit('line', { n: 1, t: 'slept 1/3' });
    FakeES.all[0].emit('error'); // the connection drops, no data
  });
  await waitFor(() => expect(FakeES.all).toHaveLength(2), { timeout: 2000 });
  expect(FakeES.all[0].closed).toBe(true);
  expect(FakeES.all[1].url).toContain('start=2');
  act(() => {
    FakeES.all[1].emit('line', { n: 1, t: 'slept 1/3' }); // a repeat is dropped
    FakeES.all[1].emit('line', { n: 2, t: 'slept 2/3' });
    FakeES.all[1].emit('end', { ...task, status: 'ok' });
  });
  expect(result.current.lines.map((l) => l.n)).toEqual([0, 1, 2]);
  expect(result.current.final?.status).toBe('ok');
});

it('reads an ended task once and shows a server error from the stream', async () => {
  FakeES.all = [];
  vi.stubGlobal('EventSource', FakeES);
  const done = { ...task, status: 'failed' as const, exit_message: 'boom' };
  vi.stubGlobal('fetch', fakeFetch({
    [`GET /api/v1/tasks/${encodeURIComponent(task.id)}/log`]: [{ n: 0, t: 'a' }, { n: 1, t: 'b' }],
    [`GET /api/v1/tasks/${encodeURIComponent(task.id)}`]: done,
  }).fn);
  const { result } = renderHook(() => useTaskLog(done), { wrapper });
  await waitFor(() => expect(result.current.final?.status).toBe('failed'));
  expect(result.current.lines.map((l) => l.t)).toEqual(['a', 'b']);
  expect(FakeES.all).toHaveLength(0);

  const { result: r2 } = renderHook(() => useTaskLog({ ...task, id: 'other' }), { wrapper });
  act(() => FakeES.all[0].emit('error', { status: 403, title: 'Forbidden', detail: 'not your task' }));
  expect(r2.current.error).toBe('not your task');
  expect(FakeES.all).toHaveLength(1); // no retry after a server error
});
