// Client-side view of the caller's privileges, used only to enable or hide
// controls: the server checks every call again. GET /access/permissions
// lists effective privileges on the paths that carry ACL entries; a path
// without its own entry inherits from the nearest listed ancestor, as the
// server's evaluator walks from "/" down.
import type { Permissions } from '../api/types';

export function privsOn(perms: Permissions | undefined, path: string): Set<string> {
  if (!perms) return new Set();
  let p = path.replace(/\/+$/, '') || '/';
  for (;;) {
    const got = perms[p];
    if (got) return new Set(got);
    if (p === '/') return new Set();
    const i = p.lastIndexOf('/');
    p = i <= 0 ? '/' : p.slice(0, i);
  }
}

/** Whether all privs are held on path. */
export function can(perms: Permissions | undefined, path: string, ...privs: string[]): boolean {
  const got = privsOn(perms, path);
  return privs.every((x) => got.has(x));
}

/** Whether any of privs is held on path or any listed path below it. */
export function canAnyBelow(perms: Permissions | undefined, path: string, ...privs: string[]): boolean {
  if (!perms) return false;
  if (privs.some((x) => privsOn(perms, path).has(x))) return true;
  const prefix = path.replace(/\/+$/, '') + '/';
  return Object.entries(perms).some(([p, list]) => p.startsWith(prefix) && privs.some((x) => list?.includes(x)));
}
