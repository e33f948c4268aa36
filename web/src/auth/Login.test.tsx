import { afterEach, describe, expect, it, vi } from 'vitest';
import { cleanup, fireEvent, screen, waitFor } from '@testing-library/react';
import { ApiError } from '../api/client';
import { fakeFetch, renderWith } from '../test/render';
import { Login, userID } from './Login';
import { loginErrorText, renewDelay, SessionProvider, useSession } from './session';

afterEach(() => {
  cleanup();
  vi.unstubAllGlobals();
  localStorage.clear();
});

describe('userID', () => {
  it.each([
    ['alice', 'corral', 'alice@corral'],
    [' bob ', 'pam', 'bob@pam'],
    ['carol@pam', 'corral', 'carol@pam'],
  ])('%s in %s', (name, realm, want) => expect(userID(name, realm)).toBe(want));
});

describe('loginErrorText', () => {
  it.each([
    [401, /wrong user name or password/],
    [429, /locked/],
    [0, /Cannot reach/],
    [500, /Login failed/],
  ])('%d', (status, want) => expect(loginErrorText(new ApiError({ status, title: 'x' }))).toMatch(want));
});

describe('renewDelay', () => {
  it('renews at three quarters of the remaining life, at least after 10 s', () => {
    const now = Date.parse('2026-01-01T00:00:00Z');
    expect(renewDelay('2026-01-01T02:00:00Z', now)).toBe(90 * 60 * 1000);
    expect(renewDelay('2026-01-01T00:00:05Z', now)).toBe(10_000);
  });
});

function Who() {
  const { session } = useSession();
  return session ? <p>logged in as {session.username}</p> : <Login />;
}

describe('Login', () => {
  const realms = [{ realm: 'corral', type: 'corral', default: true }, { realm: 'pam', type: 'pam', comment: 'Linux' }];

  it('logs in with the chosen realm and keeps the CSRF token', async () => {
    const f = fakeFetch({
      'GET /api/v1/access/realms': realms,
      'POST /api/v1/access/ticket': { ticket: 't', csrf_token: 'c1', username: 'alice@corral', expires: new Date(Date.now() + 3600e3).toISOString() },
    });
    vi.stubGlobal('fetch', f.fn);
    renderWith(<SessionProvider><Who /></SessionProvider>);
    fireEvent.change(screen.getByLabelText('User name'), { target: { value: 'alice' } });
    fireEvent.change(screen.getByLabelText('Password'), { target: { value: 'pw' } });
    await waitFor(() => expect(f.calls.some((c) => c.path === '/api/v1/access/realms')).toBe(true));
    fireEvent.click(screen.getByRole('button', { name: 'Log in' }));
    await screen.findByText('logged in as alice@corral');
    const req = f.calls.find((c) => c.method === 'POST')!;
    expect(JSON.parse(req.body!)).toEqual({ username: 'alice@corral', password: 'pw' });
    expect(JSON.parse(localStorage.getItem('corral.session')!).csrf).toBe('c1');
  });

  it.each([
    [401, 'Login failed: wrong user name or password.'],
    [429, 'Too many failed logins: this account is locked for a minute. Try again later.'],
  ])('shows a clear message for %d', async (status, text) => {
    vi.stubGlobal('fetch', fakeFetch({
      'GET /api/v1/access/realms': realms,
      'POST /api/v1/access/ticket': { status, body: { title: 'x', status, detail: 'authentication failure' } },
    }).fn);
    renderWith(<SessionProvider><Who /></SessionProvider>);
    fireEvent.change(screen.getByLabelText('User name'), { target: { value: 'alice' } });
    fireEvent.change(screen.getByLabelText('Password'), { target: { value: 'bad' } });
    fireEvent.click(screen.getByRole('button', { name: 'Log in' }));
    expect((await screen.findByTestId('login-error')).textContent).toBe(text);
  });

  it('asks for both fields before calling the server', async () => {
    const f = fakeFetch({ 'GET /api/v1/access/realms': realms });
    vi.stubGlobal('fetch', f.fn);
    renderWith(<SessionProvider><Who /></SessionProvider>);
    fireEvent.click(screen.getByRole('button', { name: 'Log in' }));
    expect((await screen.findByTestId('login-error')).textContent).toMatch(/Enter a user name/);
    expect(f.calls.filter((c) => c.method === 'POST')).toHaveLength(0);
  });

  it('ends an expired session with a message', async () => {
    localStorage.setItem('corral.session', JSON.stringify({ username: 'alice@corral', csrf: 'c', expires: new Date(Date.now() + 3600e3).toISOString() }));
    vi.stubGlobal('fetch', fakeFetch({
      'GET /api/v1/access/realms': realms,
      'GET /api/v1/access/permissions': { status: 401, body: { title: 'Unauthorized', status: 401, detail: 'invalid or expired ticket' } },
    }).fn);
    const { get } = await import('../api/client');
    renderWith(<SessionProvider><Who /></SessionProvider>);
    screen.getByText('logged in as alice@corral');
    await expect(get('/access/permissions')).rejects.toThrow();
    expect((await screen.findByTestId('login-notice')).textContent).toMatch(/session has expired/);
  });
});

describe('session renewal', () => {
  it('renews the ticket before it expires and keeps the new CSRF token', async () => {
    vi.useFakeTimers({ shouldAdvanceTime: true });
    try {
      localStorage.setItem('corral.session', JSON.stringify({ username: 'alice@corral', csrf: 'old', expires: new Date(Date.now() + 20_000).toISOString() }));
      const f = fakeFetch({
        'POST /api/v1/access/ticket/renew': { ticket: 't2', csrf_token: 'new', username: 'alice@corral', expires: new Date(Date.now() + 7200e3).toISOString() },
      });
      vi.stubGlobal('fetch', f.fn);
      renderWith(<SessionProvider><Who /></SessionProvider>);
      screen.getByText('logged in as alice@corral');
      await vi.advanceTimersByTimeAsync(16_000); // 3/4 of the 20 s left
      const renew = f.calls.find((c) => c.path === '/api/v1/access/ticket/renew');
      expect(renew?.headers['X-CSRF-Token']).toBe('old');
      await waitFor(() => expect(JSON.parse(localStorage.getItem('corral.session')!).csrf).toBe('new'));
    } finally {
      vi.useRealTimers();
    }
  });
});
