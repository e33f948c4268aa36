// A very small router: the path names the selected resource and tab,
// e.g. /qemu/100/console, /node/n1, /storage/n1/local, /datacenter/users.
// The daemon serves index.html for every such path.
import { useSyncExternalStore } from 'react';

const listeners = new Set<() => void>();
const subscribe = (fn: () => void) => {
  listeners.add(fn);
  window.addEventListener('popstate', fn);
  return () => {
    listeners.delete(fn);
    window.removeEventListener('popstate', fn);
  };
};

export function navigate(path: string) {
  if (path === window.location.pathname) return;
  window.history.pushState(null, '', path);
  listeners.forEach((l) => l());
}

export function usePath(): string {
  return useSyncExternalStore(subscribe, () => window.location.pathname);
}

export interface Route {
  kind: 'datacenter' | 'node' | 'qemu' | 'lxc' | 'storage' | 'unknown';
  id: string; // tree key: "qemu/100", "node/n1", "storage/n1/local", "datacenter"
  node?: string;
  vmid?: number;
  storage?: string;
  tab?: string;
}

export function parseRoute(path: string): Route {
  const p = path.split('/').filter(Boolean).map(decodeURIComponent);
  switch (p[0]) {
    case undefined:
    case 'datacenter':
      return { kind: 'datacenter', id: 'datacenter', tab: p[1] };
    case 'node':
      return p[1] ? { kind: 'node', id: `node/${p[1]}`, node: p[1], tab: p[2] } : { kind: 'unknown', id: '' };
    case 'qemu':
    case 'lxc': {
      const vmid = Number(p[1]);
      if (!Number.isInteger(vmid) || vmid <= 0) return { kind: 'unknown', id: '' };
      return { kind: p[0], id: `${p[0]}/${vmid}`, vmid, tab: p[2] };
    }
    case 'storage':
      return p[1] && p[2] ? { kind: 'storage', id: `storage/${p[1]}/${p[2]}`, node: p[1], storage: p[2], tab: p[3] } : { kind: 'unknown', id: '' };
    default:
      return { kind: 'unknown', id: '' };
  }
}

export function routePath(id: string, tab?: string): string {
  const base = '/' + (id === 'datacenter' ? 'datacenter' : id.split('/').map(encodeURIComponent).join('/'));
  return tab ? `${base}/${tab}` : base;
}
