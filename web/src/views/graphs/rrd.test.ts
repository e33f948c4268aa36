import { describe, expect, it } from 'vitest';
import { rrdSamples } from './rrd';

describe('rrdSamples', () => {
  it('picks, scales and keeps gaps', () => {
    const d = { timeframe: 'hour' as const, cf: 'AVERAGE' as const, step: 60, series: ['cpu', 'mem'], points: [{ time: 60, values: [0.5, 100] }, { time: 120, values: [null, 200] }] };
    expect(rrdSamples(d, [{ name: 'cpu', scale: 100 }, { name: 'mem' }, { name: 'nope' }])).toEqual([
      { t: 60000, v: [50, 100, null] },
      { t: 120000, v: [null, 200, null] },
    ]);
    expect(rrdSamples(undefined, [{ name: 'cpu' }])).toEqual([]);
  });
});
