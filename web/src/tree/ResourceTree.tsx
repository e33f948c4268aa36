// The left-hand resource tree: a virtualized list of the rows buildRows
// makes, with a view switch (server, pool, tag) and a search box. Arrow
// keys move, Enter selects, Left/Right collapse and expand.
import { useMemo, useRef, useState, type KeyboardEvent } from 'react';
import { useVirtualizer } from '@tanstack/react-virtual';
import { SegmentedControl, Stack, Text, TextInput, Tooltip } from '@mantine/core';
import { useResources } from '../api/queries';
import type { Resource } from '../api/types';
import { Icon } from '../lib/icons';
import { buildRows, type Row, type TreeView } from './model';

const ROW = 26;

export function statusColor(r?: Resource): string {
  switch (r?.status) {
    case 'running':
    case 'online':
    case 'available':
      return 'var(--mantine-color-green-6)';
    case 'paused':
    case 'frozen': // a suspended container
      return 'var(--mantine-color-yellow-6)';
    case 'stopped':
    case 'unknown':
      return 'var(--mantine-color-gray-5)';
    case undefined:
      return 'transparent';
    default:
      return 'var(--mantine-color-red-6)';
  }
}

function RowIcon({ row }: { row: Row }) {
  const tmpl = row.resource?.template;
  return (
    <>
      <Icon name={tmpl ? 'template' : row.kind} style={{ flex: 'none', opacity: 0.8 }} />
      {row.resource && row.kind !== 'group' && (
        <Tooltip label={tmpl ? 'template' : row.resource.status ?? ''} openDelay={400}>
          <span className="status-dot" style={{ background: tmpl ? 'transparent' : statusColor(row.resource) }} aria-label={tmpl ? 'template' : row.resource.status} />
        </Tooltip>
      )}
    </>
  );
}

export function ResourceTree({ selected, onSelect }: { selected: string; onSelect: (id: string) => void }) {
  const resources = useResources();
  const [view, setView] = useState<TreeView>(() => (localStorage.getItem('corral.tree-view') as TreeView) || 'server');
  const [query, setQuery] = useState('');
  const [collapsed, setCollapsed] = useState<Set<string>>(new Set());
  const rows = useMemo(() => buildRows(resources.data ?? [], view, query, collapsed), [resources.data, view, query, collapsed]);
  const parentRef = useRef<HTMLDivElement>(null);
  const virt = useVirtualizer({ count: rows.length, getScrollElement: () => parentRef.current, estimateSize: () => ROW, overscan: 12 });
  const [focus, setFocus] = useState(0);

  const toggle = (key: string, open?: boolean) =>
    setCollapsed((c) => {
      const n = new Set(c);
      const isOpen = !n.has(key);
      if (open ?? !isOpen) n.delete(key);
      else n.add(key);
      return n;
    });
  const select = (r: Row) => {
    if (r.kind === 'group') toggle(r.key);
    else onSelect(r.key);
  };
  const onKey = (e: KeyboardEvent) => {
    const r = rows[focus];
    let next = focus;
    if (e.key === 'ArrowDown') next = Math.min(rows.length - 1, focus + 1);
    else if (e.key === 'ArrowUp') next = Math.max(0, focus - 1);
    else if (e.key === 'Home') next = 0;
    else if (e.key === 'End') next = rows.length - 1;
    else if (e.key === 'ArrowRight' && r?.hasChildren) toggle(r.key, true);
    else if (e.key === 'ArrowLeft' && r?.hasChildren) toggle(r.key, false);
    else if ((e.key === 'Enter' || e.key === ' ') && r) select(r);
    else return;
    e.preventDefault();
    setFocus(next);
    virt.scrollToIndex(next);
  };

  return (
    <Stack gap={6} h="100%">
      <TextInput
        placeholder="Search ID, name, tag"
        aria-label="Search guests"
        value={query}
        onChange={(e) => setQuery(e.currentTarget.value)}
        size="xs"
        data-testid="tree-search"
      />
      <SegmentedControl
        size="xs"
        value={view}
        onChange={(v) => {
          setView(v as TreeView);
          localStorage.setItem('corral.tree-view', v);
        }}
        data={[{ value: 'server', label: 'Server' }, { value: 'pool', label: 'Pool' }, { value: 'tag', label: 'Tag' }]}
        aria-label="Tree view"
      />
      {resources.isError && <Text c="red" size="sm">Cannot load resources</Text>}
      <div
        ref={parentRef}
        role="tree"
        aria-label="Resources"
        aria-activedescendant={rows[focus] ? `tree-row-${focus}` : undefined}
        tabIndex={0}
        onKeyDown={onKey}
        style={{ flex: 1, overflow: 'auto', minHeight: 0 }}
        data-testid="resource-tree"
      >
        <div style={{ height: virt.getTotalSize(), position: 'relative' }}>
          {virt.getVirtualItems().map((vi) => {
            const r = rows[vi.index];
            return (
              <div
                key={r.key + ':' + vi.index}
                role="treeitem"
                id={`tree-row-${vi.index}`}
                data-focused={vi.index === focus || undefined}
                aria-level={r.depth + 1}
                aria-expanded={r.hasChildren ? r.expanded : undefined}
                aria-selected={r.key === selected}
                data-key={r.key}
                className="tree-row"
                style={{ position: 'absolute', top: 0, left: 0, right: 0, height: ROW, transform: `translateY(${vi.start}px)`, paddingLeft: 4 + r.depth * 14 }}
                onClick={() => {
                  setFocus(vi.index);
                  select(r);
                }}
              >
                <span
                  className="tree-toggle"
                  onClick={(e) => {
                    if (!r.hasChildren) return;
                    e.stopPropagation();
                    toggle(r.key);
                  }}
                >
                  {r.hasChildren ? (r.expanded ? '▾' : '▸') : ''}
                </span>
                <RowIcon row={r} />
                <span style={{ overflow: 'hidden', textOverflow: 'ellipsis' }}>{r.label}</span>
              </div>
            );
          })}
        </div>
      </div>
    </Stack>
  );
}
