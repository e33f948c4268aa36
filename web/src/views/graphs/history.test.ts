import { expect, it } from 'vitest';
import { addSample } from './history';

it('keeps a sliding window of samples in time order', () => {
  let l = addSample([], { t: 1000, v: [1] }, 5000);
  l = addSample(l, { t: 3000, v: [2] }, 5000);
  l = addSample(l, { t: 3000, v: [9] }, 5000); // same poll again: ignored
  l = addSample(l, { t: 7000, v: [3] }, 5000);
  expect(l.map((s) => s.v[0])).toEqual([2, 3]);
});
