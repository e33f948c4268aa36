// A container's terminal (loaded on demand): its /dev/console (a getty on
// the templates corral builds) or a login shell in it, like `pct enter`.
import { useState } from 'react';
import { Alert, Button, Group, SegmentedControl, Stack } from '@mantine/core';
import { XTerm } from './Console';

type Mode = 'console' | 'shell';

export default function CTConsole({ vmid, running, hasConsole }: { vmid: number; running: boolean; hasConsole: boolean }) {
  const [mode, setMode] = useState<Mode>(hasConsole ? 'console' : 'shell');
  const [session, setSession] = useState(0); // bump to reconnect
  if (!running) return <Alert color="gray">The container is not running: start it to use its console.</Alert>;
  return (
    <Stack gap="xs">
      <Group justify="space-between">
        <SegmentedControl
          size="xs"
          value={mode}
          onChange={(v) => setMode(v as Mode)}
          data={[{ value: 'console', label: 'Console', disabled: !hasConsole }, { value: 'shell', label: 'Shell' }]}
          data-testid="ct-console-mode"
        />
        <Button size="xs" variant="default" onClick={() => setSession((s) => s + 1)}>Reconnect</Button>
      </Group>
      <XTerm key={`${mode}${session}`} path={`/containers/${vmid}/termwebsocket?mode=${mode}`} height="60vh" wake={mode === 'console'} resize testid="ct-term" />
    </Stack>
  );
}
