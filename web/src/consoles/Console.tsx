// The console tab (loaded on demand): the VM's screen in noVNC, or its
// first serial port in xterm.js.
import { useEffect, useRef, useState } from 'react';
import { Alert, Button, Group, SegmentedControl, Stack, Text } from '@mantine/core';
import { errorText, post } from '../api/client';
import { wsURL } from './ws';
import '@xterm/xterm/css/xterm.css';

type Kind = 'vnc' | 'serial';

export default function Console({ vmid, running, serial, vga, popup }: { vmid: number; running: boolean; serial?: boolean; vga?: string; popup?: boolean }) {
  const hasScreen = vga !== 'none' && vga !== 'serial0';
  const [kind, setKind] = useState<Kind>(hasScreen ? 'vnc' : 'serial');
  const [session, setSession] = useState(0); // bump to reconnect
  if (!running) return <Alert color="gray">The VM is not running: start it to use its console.</Alert>;
  return (
    <Stack gap="xs">
      <Group justify="space-between">
        <SegmentedControl
          size="xs"
          value={kind}
          onChange={(v) => setKind(v as Kind)}
          data={[{ value: 'vnc', label: 'Screen (VNC)', disabled: !hasScreen }, { value: 'serial', label: 'Serial', disabled: !serial }]}
        />
        <Group gap="xs">
          {!popup && (
            <Button size="xs" variant="default" onClick={() => window.open(`/console/qemu/${vmid}`, `corral-console-${vmid}`, 'width=1100,height=850')}>
              New window
            </Button>
          )}
          <Button size="xs" variant="default" onClick={() => setSession((s) => s + 1)}>Reconnect</Button>
        </Group>
      </Group>
      {kind === 'vnc' ? <VNC key={`v${session}`} vmid={vmid} height={popup ? 'calc(100vh - 90px)' : '60vh'} /> : <Serial key={`s${session}`} vmid={vmid} height={popup ? 'calc(100vh - 90px)' : '60vh'} />}
    </Stack>
  );
}

function VNC({ vmid, height }: { vmid: number; height: string }) {
  const box = useRef<HTMLDivElement>(null);
  const rfbRef = useRef<{ sendCtrlAltDel(): void; disconnect(): void } | null>(null);
  const [state, setState] = useState('connecting…');
  useEffect(() => {
    let closed = false;
    (async () => {
      try {
        const [{ default: RFB }, t] = await Promise.all([
          import('@novnc/novnc'),
          post<{ ticket: string; password: string }>(`/vms/${vmid}/vncproxy`),
        ]);
        if (closed || !box.current) return;
        const rfb = new RFB(box.current, wsURL(`/vms/${vmid}/vncwebsocket?vncticket=${encodeURIComponent(t.ticket)}`), {
          credentials: { password: t.password },
          wsProtocols: ['binary'],
        });
        rfb.scaleViewport = true;
        rfb.background = '#000';
        rfb.addEventListener('connect', () => setState('connected'));
        rfb.addEventListener('disconnect', (e) => setState((e as CustomEvent).detail?.clean ? 'disconnected' : 'connection lost'));
        rfb.addEventListener('securityfailure', (e) => setState(`security failure: ${(e as CustomEvent).detail?.reason ?? ''}`));
        rfb.addEventListener('credentialsrequired', () => rfb.sendCredentials({ password: t.password }));
        rfbRef.current = rfb;
      } catch (e) {
        if (!closed) setState(`cannot open the console: ${errorText(e)}`);
      }
    })();
    return () => {
      closed = true;
      rfbRef.current?.disconnect();
    };
  }, [vmid]);
  return (
    <Stack gap={4}>
      <Group justify="space-between">
        <Text size="xs" c="dimmed" data-testid="vnc-state">{state}</Text>
        <Button size="compact-xs" variant="default" onClick={() => rfbRef.current?.sendCtrlAltDel()}>Ctrl+Alt+Del</Button>
      </Group>
      <div ref={box} className="console-box" style={{ height }} data-testid="vnc-screen" />
    </Stack>
  );
}

function Serial({ vmid, height }: { vmid: number; height: string }) {
  return <XTerm path={`/vms/${vmid}/termwebsocket`} height={height} wake testid="serial" />;
}

/**
 * A terminal on a websocket of raw bytes (a VM's serial port, a
 * container's console or shell). wake sends a carriage return on connect
 * (to show a login prompt); resize sends the size as a text message
 * {"cols","rows"}, which the container terminal understands.
 */
export function XTerm({ path, height, wake, resize, testid }: { path: string; height: string; wake?: boolean; resize?: boolean; testid: string }) {
  const box = useRef<HTMLDivElement>(null);
  const [state, setState] = useState('connecting…');
  useEffect(() => {
    let ws: WebSocket | null = null;
    let disposed = false;
    let cleanup = () => {};
    (async () => {
      const [{ Terminal }, { FitAddon }] = await Promise.all([import('@xterm/xterm'), import('@xterm/addon-fit')]);
      if (disposed || !box.current) return;
      const term = new Terminal({ cursorBlink: true, fontSize: 14, convertEol: false, scrollback: 5000 });
      const fit = new FitAddon();
      term.loadAddon(fit);
      term.open(box.current);
      fit.fit();
      term.focus();
      const enc = new TextEncoder();
      const sendSize = () => resize && ws?.readyState === WebSocket.OPEN && ws.send(JSON.stringify({ cols: term.cols, rows: term.rows }));
      ws = new WebSocket(wsURL(path), ['binary']);
      ws.binaryType = 'arraybuffer';
      ws.onopen = () => {
        setState('connected');
        sendSize();
        if (wake) ws?.send(enc.encode('\r')); // wake a login prompt
      };
      ws.onmessage = (ev) => term.write(typeof ev.data === 'string' ? ev.data : new Uint8Array(ev.data));
      ws.onclose = (ev) => setState(ev.reason ? `closed: ${ev.reason}` : 'disconnected');
      ws.onerror = () => setState('connection failed');
      const sub = term.onData((d) => ws?.readyState === WebSocket.OPEN && ws.send(enc.encode(d)));
      const onResize = () => {
        fit.fit();
        sendSize();
      };
      window.addEventListener('resize', onResize);
      cleanup = () => {
        window.removeEventListener('resize', onResize);
        sub.dispose();
        term.dispose();
      };
    })();
    return () => {
      disposed = true;
      ws?.close();
      cleanup();
    };
  }, [path, wake, resize]);
  return (
    <Stack gap={4}>
      <Text size="xs" c="dimmed" data-testid={`${testid}-state`}>{state}</Text>
      <div ref={box} className="console-box" style={{ height, padding: 4 }} data-testid={`${testid}-screen`} />
    </Stack>
  );
}
