import { lazy, Suspense } from 'react';
import { Loader } from '@mantine/core';

const RRDGraphs = lazy(() => import('./RRDGraphs'));

/** Stored-metrics graphs of a node, guest or pool; uPlot is fetched when one first shows. */
export function History(p: { path: string; kind: 'node' | 'guest' | 'storage' }) {
  return (
    <Suspense fallback={<Loader size="sm" />}>
      <RRDGraphs {...p} />
    </Suspense>
  );
}
