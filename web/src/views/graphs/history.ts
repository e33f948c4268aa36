// Samples of a polled value kept while a view is open, for the summary
// graphs. When the daemon serves stored metrics (rrddata), the graphs read
// those instead and this stays as the live tail.
import { useEffect, useRef, useState } from 'react';

export type Sample = { t: number; v: number[] };

/** Appends s to the list, dropping samples older than windowMs or repeated timestamps. */
export function addSample(list: Sample[], s: Sample, windowMs: number): Sample[] {
  if (list.length && list[list.length - 1].t >= s.t) return list;
  const from = s.t - windowMs;
  const kept = list.filter((x) => x.t >= from);
  kept.push(s);
  return kept;
}

export function useHistory(values: number[] | undefined, at: number, windowMs = 10 * 60_000): Sample[] {
  const [list, setList] = useState<Sample[]>([]);
  const last = useRef(0);
  useEffect(() => {
    if (!values || at === last.current) return;
    last.current = at;
    setList((l) => addSample(l, { t: at, v: values }, windowMs));
  }, [values, at, windowMs]);
  return list;
}
