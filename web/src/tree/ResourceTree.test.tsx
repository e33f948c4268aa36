import { afterAll, afterEach, beforeAll, expect, it } from 'vitest';
import { act, cleanup, fireEvent, screen } from '@testing-library/react';
import { QueryClient } from '@tanstack/react-query';
import type { Resource } from '../api/types';
import { renderWith } from '../test/render';
import { ResourceTree } from './ResourceTree';

afterEach(cleanup);

// jsdom has no layout: give elements a viewport so the virtualizer renders rows.
const saved = ['clientHeight', 'clientWidth'].map((k) => [k, Object.getOwnPropertyDescriptor(HTMLElement.prototype, k)] as const);
beforeAll(() => {
  Object.defineProperty(HTMLElement.prototype, 'clientHeight', { configurable: true, get: () => 600 });
  Object.defineProperty(HTMLElement.prototype, 'clientWidth', { configurable: true, get: () => 300 });
});
afterAll(() => {
  for (const [k, d] of saved) if (d) Object.defineProperty(HTMLElement.prototype, k, d);
});

function seeded(resources: Resource[]) {
  const qc = new QueryClient({ defaultOptions: { queries: { retry: false, staleTime: Infinity } } });
  qc.setQueryData(['resources'], resources);
  return qc;
}

it('renders 10,000 guests virtualized and filters them within a second', async () => {
  const many: Resource[] = [{ id: 'node/n1', type: 'node', node: 'n1', status: 'online' }];
  for (let i = 0; i < 10000; i++) many.push({ id: `qemu/${1000 + i}`, type: 'qemu', vmid: 1000 + i, node: 'n1', name: `g${i}`, status: 'running' });
  const t0 = performance.now();
  renderWith(<ResourceTree selected="" onSelect={() => {}} />, seeded(many));
  const rendered = (await screen.findAllByRole('treeitem')).length;
  const renderMs = performance.now() - t0;
  const t1 = performance.now();
  expect(rendered).toBeGreaterThan(10);
  expect(rendered).toBeLessThan(100); // only what the viewport needs
  act(() => {
    fireEvent.change(screen.getByTestId('tree-search'), { target: { value: 'g9999' } });
  });
  const filterMs = performance.now() - t1;
  expect(screen.getAllByRole('treeitem').map((e) => e.getAttribute('data-key'))).toEqual(['datacenter', 'node/n1', 'qemu/10999']);
  // jsdom is much slower than a browser (the e2e suite measures Chromium);
  // these bounds still catch a tree that renders every row.
  console.log(`10,000 guests in jsdom: render ${renderMs.toFixed(0)} ms, filter ${filterMs.toFixed(0)} ms`);
  expect(renderMs).toBeLessThan(3000);
  expect(filterMs).toBeLessThan(1000);
});

it('selects with the keyboard and collapses groups', () => {
  const picked: string[] = [];
  renderWith(
    <ResourceTree selected="" onSelect={(id) => picked.push(id)} />,
    seeded([
      { id: 'node/n1', type: 'node', node: 'n1', status: 'online' },
      { id: 'qemu/100', type: 'qemu', vmid: 100, node: 'n1', name: 'a', status: 'stopped' },
    ]),
  );
  const tree = screen.getByRole('tree');
  fireEvent.keyDown(tree, { key: 'ArrowDown' });
  fireEvent.keyDown(tree, { key: 'ArrowDown' });
  fireEvent.keyDown(tree, { key: 'Enter' });
  expect(picked).toEqual(['qemu/100']);
  fireEvent.keyDown(tree, { key: 'ArrowUp' });
  fireEvent.keyDown(tree, { key: 'ArrowLeft' });
  expect(screen.queryByText('100 (a)')).toBeNull();
});
