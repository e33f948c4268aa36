import { expect, it } from 'vitest';
import { wsURL } from './ws';

it('maps the page origin to a websocket URL', () => {
  expect(wsURL('/vms/100/termwebsocket', { protocol: 'https:', host: 'n1:8006' })).toBe('wss://n1:8006/api/v1/vms/100/termwebsocket');
  expect(wsURL('/x', { protocol: 'http:', host: 'localhost:5173' })).toBe('ws://localhost:5173/api/v1/x');
});
