// The login session: the HttpOnly ticket cookie does the authenticating;
// what the UI keeps (user, CSRF token, expiry) lives in localStorage so a
// reload or a second tab stays logged in. Tickets are renewed well before
// they expire; a 401 from any call ends the session with a clear message.
import { createContext, useCallback, useContext, useEffect, useMemo, useRef, useState, type ReactNode } from 'react';
import { useQueryClient } from '@tanstack/react-query';
import { ApiError, post, request, setCSRF, setUnauthorizedHandler } from '../api/client';
import type { Ticket } from '../api/types';

const KEY = 'corral.session';

export interface SessionInfo {
  username: string;
  csrf: string;
  expires: string; // RFC 3339
}

interface SessionCtx {
  session: SessionInfo | null;
  /** Why the last session ended, shown on the login form. */
  endedReason: string;
  login(username: string, password: string): Promise<void>;
  logout(): void;
}

const Ctx = createContext<SessionCtx | null>(null);

function load(): SessionInfo | null {
  try {
    const s = JSON.parse(localStorage.getItem(KEY) ?? 'null') as SessionInfo | null;
    if (s && new Date(s.expires).getTime() > Date.now()) return s;
  } catch {
    /* corrupt: treat as logged out */
  }
  return null;
}

/** Text for a failed login, by status: wrong credentials, rate limit, other. */
export function loginErrorText(e: unknown): string {
  if (e instanceof ApiError) {
    if (e.status === 401) return 'Login failed: wrong user name or password.';
    if (e.status === 429) return 'Too many failed logins: this account is locked for a minute. Try again later.';
    if (e.status === 0) return 'Cannot reach the server.';
    if (e.status === 400 || e.status === 422) return 'Enter a user name and a password.';
    return `Login failed: ${e.detail || e.title}`;
  }
  return `Login failed: ${String(e)}`;
}

/** Milliseconds until the ticket should be renewed: at 3/4 of its remaining life, at least 10 s. */
export function renewDelay(expires: string, now = Date.now()): number {
  const left = new Date(expires).getTime() - now;
  return Math.max(10_000, Math.floor(left * 0.75));
}

export function SessionProvider({ children }: { children: ReactNode }) {
  const [session, setSession] = useState<SessionInfo | null>(() => {
    const s = load();
    if (s) setCSRF(s.csrf);
    return s;
  });
  const [endedReason, setEndedReason] = useState('');
  const qc = useQueryClient();
  const timer = useRef<ReturnType<typeof setTimeout> | undefined>(undefined);

  const store = useCallback((t: Ticket) => {
    const s = { username: t.username, csrf: t.csrf_token, expires: t.expires };
    localStorage.setItem(KEY, JSON.stringify(s));
    setCSRF(s.csrf);
    setSession(s);
  }, []);

  const end = useCallback(
    (reason: string) => {
      localStorage.removeItem(KEY);
      setCSRF('');
      setSession(null);
      setEndedReason(reason);
      qc.clear();
    },
    [qc],
  );

  useEffect(() => {
    setUnauthorizedHandler(() => end('Your session has expired. Please log in again.'));
    return () => setUnauthorizedHandler(null);
  }, [end]);

  // Another tab logged in or out.
  useEffect(() => {
    const onStorage = (e: StorageEvent) => {
      if (e.key !== KEY) return;
      const s = load();
      if (s) {
        setCSRF(s.csrf);
        setSession(s);
      } else {
        end('');
      }
    };
    window.addEventListener('storage', onStorage);
    return () => window.removeEventListener('storage', onStorage);
  }, [end]);

  useEffect(() => {
    clearTimeout(timer.current);
    if (!session) return;
    timer.current = setTimeout(async () => {
      try {
        store(await post<Ticket>('/access/ticket/renew'));
      } catch (e) {
        if (!(e instanceof ApiError && e.status === 401)) {
          // A network blip: try again soon while the ticket is still valid.
          setSession((s) => (s ? { ...s } : s));
        }
      }
    }, renewDelay(session.expires));
    return () => clearTimeout(timer.current);
  }, [session, store]);

  const login = useCallback(
    async (username: string, password: string) => {
      const { data } = await request<Ticket>('POST', '/access/ticket', { body: { username, password }, anonymous: true });
      setEndedReason('');
      qc.clear();
      store(data);
    },
    [qc, store],
  );

  const logout = useCallback(() => end(''), [end]);
  const value = useMemo(() => ({ session, endedReason, login, logout }), [session, endedReason, login, logout]);
  return <Ctx.Provider value={value}>{children}</Ctx.Provider>;
}

export function useSession(): SessionCtx {
  const c = useContext(Ctx);
  if (!c) throw new Error('useSession outside SessionProvider');
  return c;
}
