import { describe, expect, it } from 'vitest';
import { nicErrors, validateNic } from './nic';

describe('validateNic', () => {
  it.each([
    [{ name: 'eth0', bridge: 'vmbr0', ip: 'dhcp' }, []],
    [{ name: 'Eth0' }, ['name']],
    [{ name: 'eth0', ip: '10.0.0.5' }, ['ip']],
    [{ name: 'eth0', ip: '10.0.0.5/24', gw: '10.0.0.1' }, []],
    [{ name: 'eth0', bridge: 'a-very-long-bridge-name' }, ['bridge']],
    [{ name: 'eth0', tag: 5000 }, ['tag']],
  ])('%o', (n, want) => expect(Object.keys(validateNic(n)).sort()).toEqual(want));
});

describe('nicErrors', () => {
  it('keeps the errors of one NIC, by field', () => {
    const fe = { 'body.nets[1].bridge': 'no bridge x on n1', 'nets[0].ip': 'bad', nets: 'duplicate name' };
    expect(nicErrors(fe, 1)).toEqual({ bridge: 'no bridge x on n1', _: 'duplicate name' });
  });
});
