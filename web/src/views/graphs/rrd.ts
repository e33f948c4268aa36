// Turning a rrddata answer into chart samples: pick series by name, scale
// them (CPU shares to percent), keep the rows' times.
import type { RRDData } from '../../api/types';
import type { Sample } from './history';

export interface Pick {
  name: string; // series in the archive
  scale?: number;
}

/** Samples of the picked series; a series the archive lacks reads as null. */
export function rrdSamples(d: RRDData | undefined, picks: Pick[]): Sample[] {
  if (!d) return [];
  const idx = picks.map((p) => (d.series ?? []).indexOf(p.name));
  return (d.points ?? []).map((pt) => ({
    t: pt.time * 1000,
    v: idx.map((i, k) => {
      const v = i >= 0 ? pt.values?.[i] : null;
      return v == null ? (null as unknown as number) : v * (picks[k].scale ?? 1);
    }),
  }));
}
