import { lazy, Suspense } from 'react';
import { Loader } from '@mantine/core';
import type { ChartProps } from './Chart';

const Chart = lazy(() => import('./Chart'));

/** The chart, with uPlot fetched the first time one is shown. */
export function LiveChart(p: ChartProps) {
  return (
    <Suspense fallback={<Loader size="sm" />}>
      <Chart {...p} />
    </Suspense>
  );
}
