// Renders a component inside the app's providers for component tests.
import type { ReactNode } from 'react';
import { render } from '@testing-library/react';
import { MantineProvider } from '@mantine/core';
import { QueryClient, QueryClientProvider } from '@tanstack/react-query';

export function renderWith(ui: ReactNode, qc = new QueryClient({ defaultOptions: { queries: { retry: false } } })) {
  return { qc, ...render(<MantineProvider><QueryClientProvider client={qc}>{ui}</QueryClientProvider></MantineProvider>) };
}

/** A fetch stand-in answering by "METHOD path" with JSON (status 200 unless given). */
export function fakeFetch(routes: Record<string, unknown | { status: number; body: unknown }>) {
  const calls: { method: string; path: string; body?: string; headers: Record<string, string> }[] = [];
  const fn = async (input: RequestInfo | URL, init?: RequestInit) => {
    const u = new URL(String(input), 'https://corral.test');
    const method = init?.method ?? 'GET';
    calls.push({ method, path: u.pathname + u.search, body: init?.body as string | undefined, headers: (init?.headers ?? {}) as Record<string, string> });
    const hit = routes[`${method} ${u.pathname}`];
    if (hit === undefined) return new Response(JSON.stringify({ title: 'Not Found', status: 404 }), { status: 404 });
    const r = hit && typeof hit === 'object' && 'status' in (hit as object) && 'body' in (hit as object) ? (hit as { status: number; body: unknown }) : { status: 200, body: hit };
    return new Response(JSON.stringify(r.body), { status: r.status, headers: { 'Content-Type': r.status >= 400 ? 'application/problem+json' : 'application/json' } });
  };
  return { fn: fn as typeof fetch, calls };
}
