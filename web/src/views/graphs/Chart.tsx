// A small time-series chart (uPlot), loaded on demand with the summaries
// that show one.
import { useEffect, useRef } from 'react';
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';
import { useComputedColorScheme } from '@mantine/core';
import type { Sample } from './history';

export interface ChartProps {
  title: string;
  samples: Sample[];
  series: { label: string; color: string; fmt?: (v: number) => string }[];
  height?: number;
  max?: number;
}

export default function Chart({ title, samples, series, height = 140, max }: ChartProps) {
  const box = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | null>(null);
  const dark = useComputedColorScheme('light') === 'dark';
  useEffect(() => {
    if (!box.current) return;
    const axis = { stroke: dark ? '#aaa' : '#555', grid: { stroke: dark ? '#333' : '#eee' }, ticks: { stroke: dark ? '#333' : '#eee' } };
    const opts: uPlot.Options = {
      title,
      width: box.current.clientWidth || 400,
      height,
      scales: { y: max !== undefined ? { range: [0, max] } : { range: (_u, _min, mx) => [0, mx > 0 ? mx * 1.1 : 1] } },
      series: [{}, ...series.map((s) => ({ label: s.label, stroke: s.color, fill: s.color + '22', width: 1.5, value: (_u: uPlot, v: number | null) => (v == null ? '—' : s.fmt ? s.fmt(v) : v.toFixed(2)) }))],
      axes: [axis, { ...axis, size: 76, values: (_u, vals) => vals.map((v) => (series[0].fmt ? series[0].fmt(v) : String(v))) }],
      legend: { show: true },
    };
    plot.current = new uPlot(opts, [[], ...series.map(() => [])], box.current);
    const ro = new ResizeObserver(() => box.current && plot.current?.setSize({ width: box.current.clientWidth, height }));
    ro.observe(box.current);
    return () => {
      ro.disconnect();
      plot.current?.destroy();
      plot.current = null;
    };
    // Series and title are fixed per chart; the data updates below.
  }, [dark, height, max]); // eslint-disable-line react-hooks/exhaustive-deps
  useEffect(() => {
    plot.current?.setData([samples.map((s) => s.t / 1000), ...series.map((_, i) => samples.map((s) => s.v[i]))]);
  }, [samples, series]);
  return <div ref={box} style={{ width: '100%' }} data-testid="chart" />;
}
