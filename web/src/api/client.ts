// The one place that talks HTTP to the daemon. The session is the
// HttpOnly CorralAuth cookie the ticket call sets; mutating requests add
// the CSRF token that came with the ticket. Errors become ApiError with the
// problem+json fields, so forms can put field errors on their fields.
import type { FieldError, Problem } from './types';

export const API = '/api/v1';

let csrfToken = '';
let onUnauthorized: (() => void) | null = null;

export function setCSRF(token: string) {
  csrfToken = token;
}

/** Called when the server answers 401 to an authenticated call (expired session). */
export function setUnauthorizedHandler(fn: (() => void) | null) {
  onUnauthorized = fn;
}

export class ApiError extends Error {
  status: number;
  title: string;
  detail: string;
  errors: FieldError[];
  constructor(p: Partial<Problem> & { status: number }) {
    super(p.detail || p.title || `HTTP ${p.status}`);
    this.status = p.status;
    this.title = p.title ?? '';
    this.detail = p.detail ?? '';
    this.errors = p.errors ?? [];
  }
  /** Field errors keyed by field path ("disks[0].size", "name"). */
  fieldErrors(): Record<string, string> {
    const out: Record<string, string> = {};
    for (const e of this.errors) {
      const k = normalizeField(e.field);
      out[k] = out[k] ? `${out[k]}; ${e.message}` : e.message;
    }
    return out;
  }
}

/** huma reports body fields as "body.disks[0].size"; forms use "disks[0].size". */
export function normalizeField(f: string): string {
  return f.replace(/^body\./, '');
}

export interface RequestOptions {
  body?: unknown;
  headers?: Record<string, string>;
  query?: Record<string, string | number | boolean | undefined>;
  /** Do not treat 401 as an expired session (the login call itself). */
  anonymous?: boolean;
}

export interface Response<T> {
  data: T;
  headers: Headers;
}

export function url(path: string, query?: RequestOptions['query']): string {
  let u = API + path;
  if (query) {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(query)) if (v !== undefined && v !== '') q.set(k, String(v));
    const s = q.toString();
    if (s) u += '?' + s;
  }
  return u;
}

export async function request<T>(method: string, path: string, opts: RequestOptions = {}): Promise<Response<T>> {
  const headers: Record<string, string> = { Accept: 'application/json, application/problem+json', ...opts.headers };
  if (method !== 'GET' && method !== 'HEAD' && csrfToken) headers['X-CSRF-Token'] = csrfToken;
  let body: BodyInit | undefined;
  if (opts.body !== undefined) {
    headers['Content-Type'] = 'application/json';
    body = JSON.stringify(opts.body);
  }
  let res: globalThis.Response;
  try {
    res = await fetch(url(path, opts.query), { method, headers, body, credentials: 'same-origin' });
  } catch (e) {
    throw new ApiError({ status: 0, title: 'Network error', detail: `cannot reach the server: ${(e as Error).message}` });
  }
  const text = await res.text();
  let parsed: unknown = undefined;
  if (text) {
    try {
      parsed = JSON.parse(text);
    } catch {
      parsed = text;
    }
  }
  if (!res.ok) {
    const p = (typeof parsed === 'object' && parsed) ? (parsed as Partial<Problem>) : { detail: String(parsed ?? '') };
    const err = new ApiError({ ...p, status: res.status, title: p.title || res.statusText });
    if (res.status === 401 && !opts.anonymous && onUnauthorized) onUnauthorized();
    throw err;
  }
  return { data: parsed as T, headers: res.headers };
}

export const get = async <T>(path: string, query?: RequestOptions['query']) => (await request<T>('GET', path, { query })).data;
export const post = async <T>(path: string, body?: unknown, query?: RequestOptions['query']) =>
  (await request<T>('POST', path, { body, query })).data;
export const put = async <T>(path: string, body?: unknown, headers?: Record<string, string>) =>
  (await request<T>('PUT', path, { body, headers })).data;
export const del = async <T>(path: string, query?: RequestOptions['query']) => (await request<T>('DELETE', path, { query })).data;

/** Human text for an error from any call. */
export function errorText(e: unknown): string {
  if (e instanceof ApiError) {
    const fields = e.errors.map((f) => `${normalizeField(f.field)}: ${f.message}`).join('; ');
    return [e.detail || e.title, fields].filter(Boolean).join(' — ');
  }
  return e instanceof Error ? e.message : String(e);
}

/** Uploads a file with progress (fetch has no upload progress). */
export function upload(path: string, query: RequestOptions['query'], file: Blob, onProgress: (fraction: number) => void): {
  promise: Promise<unknown>;
  abort: () => void;
} {
  const xhr = new XMLHttpRequest();
  const promise = new Promise<unknown>((resolve, reject) => {
    xhr.open('POST', url(path, query));
    xhr.setRequestHeader('Content-Type', 'application/octet-stream');
    if (csrfToken) xhr.setRequestHeader('X-CSRF-Token', csrfToken);
    xhr.upload.onprogress = (ev) => ev.lengthComputable && onProgress(ev.loaded / ev.total);
    xhr.onload = () => {
      let body: Partial<Problem> = {};
      try {
        body = JSON.parse(xhr.responseText);
      } catch {
        /* not JSON */
      }
      if (xhr.status >= 200 && xhr.status < 300) resolve(body);
      else reject(new ApiError({ ...body, status: xhr.status }));
    };
    xhr.onerror = () => reject(new ApiError({ status: 0, title: 'Network error', detail: 'upload failed' }));
    xhr.onabort = () => reject(new ApiError({ status: 0, title: 'Cancelled', detail: 'upload cancelled' }));
    xhr.send(file);
  });
  return { promise, abort: () => xhr.abort() };
}
