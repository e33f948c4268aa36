import { describe, expect, it } from 'vitest';
import { cell, objPath } from './SDN';

describe('SDN helpers', () => {
  it('names subnets in URLs', () => expect(objPath('10.0.0.0/24')).toBe('10.0.0.0-24'));
  it.each([[undefined, '—'], [true, 'yes'], [['a', 'b'], 'a, b'], [[], '—'], [1450, '1450']])('%o', (v, want) => expect(cell(v)).toBe(want));
});
