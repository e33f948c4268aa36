// Whether the daemon's event stream is delivering: while it is, lists are
// refreshed by events and the periodic refetches stop.
import { useSyncExternalStore } from 'react';

let streaming = false;
const listeners = new Set<() => void>();

export function setStreaming(v: boolean) {
  if (v === streaming) return;
  streaming = v;
  listeners.forEach((l) => l());
}

export function useStreaming(): boolean {
  return useSyncExternalStore(
    (fn) => {
      listeners.add(fn);
      return () => listeners.delete(fn);
    },
    () => streaming,
  );
}
