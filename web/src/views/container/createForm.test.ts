import { describe, expect, it } from 'vitest';
import { ctFormField, ctStepOf, defaultCTForm, toCTRequest, validateCT } from './createForm';

const ok = { ...defaultCTForm, node: 'n1', ostemplate: 'local:vztmpl/busybox.tar.gz' };

describe('validateCT', () => {
  it('accepts the defaults with a template', () => expect(validateCT(ok)).toEqual({}));
  it.each([
    [{ ostemplate: '' }, 'ostemplate'],
    [{ hostname: '-bad' }, 'hostname'],
    [{ password: 'abc', password2: 'abc' }, 'password'],
    [{ password: 'abcdef', password2: 'abcdeg' }, 'password2'],
    [{ sshKeys: 'not a key' }, 'sshKeys'],
    [{ memory: 8 }, 'memory'],
    [{ rootSize: '1 GB' }, 'rootSize'],
    [{ withNet: true, net: { name: 'eth0', ip: '10.0.0.1' } }, 'net.ip'],
    [{ nameserver: '1.1.1.1 2.2.2.2 3.3.3.3 4.4.4.4' }, 'nameserver'],
  ])('%o → %s', (patch, field) => expect(Object.keys(validateCT({ ...ok, ...patch }))).toEqual([field]));
});

describe('server fields', () => {
  it.each([
    ['body.nets[0].bridge', 'net.bridge', 5],
    ['rootfs.size', 'rootSize', 2],
    ['body.password', 'password', 0],
    ['ostemplate', 'ostemplate', 1],
    ['nameserver[1]', 'nameserver', 6],
  ])('%s', (server, form, step) => {
    expect(ctFormField(server)).toBe(form);
    expect(ctStepOf(server)).toBe(step);
  });
});

describe('toCTRequest', () => {
  it('builds the request', () => {
    const r = toCTRequest({ ...ok, vmid: 200, password: 'secret1', password2: 'secret1', sshKeys: 'ssh-ed25519 AAAA u@h\n', withNet: true, net: { name: 'eth0', bridge: 'br0', ip: 'dhcp', gw: '' }, nameserver: '1.1.1.1, 9.9.9.9' });
    expect(r).toMatchObject({ vmid: 200, password: 'secret1', ssh_public_keys: ['ssh-ed25519 AAAA u@h'], nets: [{ name: 'eth0', bridge: 'br0', ip: 'dhcp' }], nameserver: ['1.1.1.1', '9.9.9.9'], rootfs: { size: '1G' } });
    expect(toCTRequest(ok).nets).toBeUndefined();
  });
});
