import { expect, it } from 'vitest';
import { validateCloudInit } from './CloudInit';

it.each([
  [{ user: 'debian', ip: 'dhcp' }, []],
  [{ ip: '10.0.0.5/24', gw: '10.0.0.1', nameserver: ['1.1.1.1'] }, []],
  [{ password_hash: '$6$salt$abcdef' }, []],
  [{ user: 'Root' }, ['user']],
  [{ password_hash: 'plain-password' }, ['password_hash']],
  [{ ip: '10.0.0.5' }, ['ip']],
  [{ nameserver: ['a', 'b', 'c', 'd'] }, ['nameserver']],
  [{ searchdomain: 'bad domain' }, ['searchdomain']],
])('%j', (c, want) => expect(Object.keys(validateCloudInit(c))).toEqual(want));
