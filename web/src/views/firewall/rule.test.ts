import { describe, expect, it } from 'vitest';
import { emptyRule, ruleText, validateRule } from './rule';

describe('validateRule', () => {
  it.each([
    [{ proto: 'tcp', dport: '22' }, []],
    [{ proto: 'tcp', dport: '80,443,8000:8080' }, []],
    [{ dport: '22' }, ['proto']],
    [{ proto: 'udp', dport: 'ssh' }, ['dport']],
    [{ iface: 'a-very-long-interface' }, ['iface']],
  ] as const)('%o', (patch, want) => expect(Object.keys(validateRule({ ...emptyRule, ...patch })).sort()).toEqual(want));
});

describe('ruleText', () => {
  it('summarizes', () => expect(ruleText({ ...emptyRule, proto: 'tcp', dport: '22', source: '10.0.0.0/8' })).toBe('in ACCEPT tcp port 22 from 10.0.0.0/8'));
});
