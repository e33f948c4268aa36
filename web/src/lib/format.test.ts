import { describe, expect, it } from 'vitest';
import { bytes, duration, pct } from './format';

describe('format', () => {
  it.each([
    [0, '0 B'], [1023, '1023 B'], [1024, '1.0 KiB'], [1536 * 1024 * 1024, '1.5 GiB'], [200 * 1024 ** 3, '200 GiB'],
  ])('bytes(%d)', (n, want) => expect(bytes(n)).toBe(want));
  it('duration', () => {
    expect(duration(59)).toBe('0m 59s');
    expect(duration(3661)).toBe('1h 1m 1s');
    expect(duration(90061)).toBe('1d 1h 1m');
  });
  it('pct', () => {
    expect(pct(1, 4)).toBe(25);
    expect(pct(1, 0)).toBe(0);
  });
});
