// History graphs from the stored metrics (GET .../rrddata), loaded on
// demand with uPlot: hour, day, week, month or year.
import { useMemo, useState } from 'react';
import { Card, Group, SegmentedControl, SimpleGrid, Stack, Text } from '@mantine/core';
import { useQuery } from '@tanstack/react-query';
import { get } from '../../api/client';
import type { RRDData } from '../../api/types';
import { bytes } from '../../lib/format';
import Chart from './Chart';
import { rrdSamples, type Pick } from './rrd';

type Kind = 'node' | 'guest' | 'storage';
const pctFmt = (v: number) => `${v.toFixed(0)}%`;
const rateFmt = (v: number) => `${bytes(v)}/s`;

interface Graph {
  title: string;
  picks: (Pick & { label: string; color: string })[];
  fmt: (v: number) => string;
  max?: number;
}

const graphs: Record<Kind, Graph[]> = {
  guest: [
    { title: 'CPU usage', picks: [{ name: 'cpu', scale: 100, label: 'CPU', color: '#12b886' }], fmt: pctFmt, max: 100 },
    { title: 'Memory', picks: [{ name: 'mem', label: 'Used', color: '#228be6' }, { name: 'maxmem', label: 'Total', color: '#868e96' }], fmt: bytes },
    { title: 'Network', picks: [{ name: 'netin', label: 'In', color: '#7950f2' }, { name: 'netout', label: 'Out', color: '#f76707' }], fmt: rateFmt },
    { title: 'Disk I/O', picks: [{ name: 'diskread', label: 'Read', color: '#1098ad' }, { name: 'diskwrite', label: 'Write', color: '#e8590c' }], fmt: rateFmt },
  ],
  node: [
    { title: 'CPU usage', picks: [{ name: 'cpu', scale: 100, label: 'CPU', color: '#12b886' }], fmt: pctFmt, max: 100 },
    { title: 'Load average', picks: [{ name: 'loadavg', label: '1 min', color: '#fab005' }], fmt: (v) => v.toFixed(2) },
    { title: 'Memory', picks: [{ name: 'memused', label: 'Used', color: '#228be6' }, { name: 'memtotal', label: 'Total', color: '#868e96' }], fmt: bytes },
    { title: 'Network', picks: [{ name: 'netin', label: 'In', color: '#7950f2' }, { name: 'netout', label: 'Out', color: '#f76707' }], fmt: rateFmt },
  ],
  storage: [{ title: 'Usage', picks: [{ name: 'used', label: 'Used', color: '#228be6' }, { name: 'total', label: 'Total', color: '#868e96' }], fmt: bytes }],
};

const timeframes = ['hour', 'day', 'week', 'month', 'year'];

export default function RRDGraphs({ path, kind }: { path: string; kind: Kind }) {
  const [tf, setTf] = useState('hour');
  const q = useQuery({
    queryKey: ['rrd', path, tf],
    queryFn: () => get<RRDData>(path, { timeframe: tf }),
    refetchInterval: tf === 'hour' ? 30_000 : 300_000,
  });
  return (
    <Stack gap="xs" data-testid="rrd-graphs">
      <Group justify="space-between">
        <Text fw={600}>History</Text>
        <SegmentedControl size="xs" value={tf} onChange={setTf} data={timeframes} aria-label="Time frame" />
      </Group>
      {q.error ? (
        <Text size="sm" c="dimmed">No stored metrics: {String((q.error as Error).message ?? q.error)}</Text>
      ) : (
        <SimpleGrid cols={{ base: 1, md: 2 }}>
          {graphs[kind].map((g) => (
            <Card withBorder key={g.title}><RRDChart data={q.data} g={g} /></Card>
          ))}
        </SimpleGrid>
      )}
    </Stack>
  );
}

function RRDChart({ data, g }: { data?: RRDData; g: Graph }) {
  const samples = useMemo(() => rrdSamples(data, g.picks), [data, g]);
  const series = useMemo(() => g.picks.map((p) => ({ label: p.label, color: p.color, fmt: g.fmt })), [g]);
  return <Chart title={g.title} samples={samples} series={series} max={g.max} />;
}
