import { afterEach, expect, it } from 'vitest';
import { cleanup, fireEvent, screen } from '@testing-library/react';
import { QueryClient } from '@tanstack/react-query';
import { Notifications } from '@mantine/notifications';
import { renderWith } from '../../test/render';
import { GuestActions } from './GuestActions';

afterEach(cleanup);

function withPerms(perms: Record<string, string[]>) {
  const qc = new QueryClient({ defaultOptions: { queries: { staleTime: Infinity, retry: false } } });
  qc.setQueryData(['permissions'], perms);
  return qc;
}

const buttons = () => [...document.querySelectorAll('[data-action]')].map((b) => `${b.getAttribute('data-action')}${(b as HTMLButtonElement).disabled ? '(off)' : ''}`);

it('shows a restricted user only the power buttons, enabled by state', () => {
  renderWith(
    <><Notifications /><GuestActions state={{ vmid: 101, status: 'stopped', template: false }} onConsole={() => {}} /></>,
    withPerms({ '/vms/101': ['VM.Audit', 'VM.PowerMgmt'] }),
  );
  expect(buttons()).toEqual(['start', 'shutdown(off)', 'reboot(off)', 'suspend(off)', 'resume(off)', 'stop(off)', 'more']);
  fireEvent.click(screen.getByText('More ▾'));
  expect(document.querySelector('[data-action=destroy]')).toBeNull();
});

it('gives an administrator destroy behind a typed confirmation', async () => {
  renderWith(
    <GuestActions state={{ vmid: 100, status: 'stopped', template: false }} name="web" onConsole={() => {}} />,
    withPerms({ '/': ['VM.Audit', 'VM.PowerMgmt', 'VM.Console', 'VM.Clone', 'VM.Allocate'] }),
  );
  fireEvent.click(screen.getByText('More ▾'));
  fireEvent.click(await screen.findByText('Destroy…'));
  const destroy = await screen.findByRole('button', { name: 'Destroy' });
  expect((destroy as HTMLButtonElement).disabled).toBe(true);
  fireEvent.change(screen.getByTestId('destroy-confirm'), { target: { value: '10' } });
  expect((destroy as HTMLButtonElement).disabled).toBe(true);
  fireEvent.change(screen.getByTestId('destroy-confirm'), { target: { value: '100' } });
  expect((destroy as HTMLButtonElement).disabled).toBe(false);
});

it('offers a container no reset, and clones it by hostname', async () => {
  renderWith(
    <GuestActions kind="lxc" state={{ vmid: 300, status: 'stopped', template: false }} name="web" onConsole={() => {}} />,
    withPerms({ '/': ['VM.Audit', 'VM.PowerMgmt', 'VM.Console', 'VM.Clone', 'VM.Allocate'] }),
  );
  fireEvent.click(screen.getByText('More ▾'));
  await screen.findByText('Destroy…');
  expect(document.querySelector('[data-action=reset]')).toBeNull();
  fireEvent.click(screen.getByText('Clone…'));
  expect(await screen.findByText('Clone CT 300')).toBeTruthy();
  expect((screen.getByLabelText('Hostname') as HTMLInputElement).value).toBe('web-clone');
});
