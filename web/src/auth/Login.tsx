import { useState, type FormEvent } from 'react';
import { Alert, Button, Center, Paper, PasswordInput, Select, Stack, TextInput, Title } from '@mantine/core';
import { useQuery } from '@tanstack/react-query';
import { get } from '../api/client';
import type { Realm } from '../api/types';
import { loginErrorText, useSession } from './session';

/** userid sent to the server: name@realm unless the user typed a realm. */
export function userID(name: string, realm: string | null): string {
  const n = name.trim();
  return n.includes('@') || !realm ? n : `${n}@${realm}`;
}

export function Login() {
  const { login, endedReason } = useSession();
  const realms = useQuery({ queryKey: ['realms'], queryFn: () => get<Realm[]>('/access/realms') });
  const [name, setName] = useState('');
  const [password, setPassword] = useState('');
  const [realm, setRealm] = useState<string | null>(null);
  const [error, setError] = useState('');
  const [busy, setBusy] = useState(false);
  const defaultRealm = realms.data?.find((r) => r.default)?.realm ?? realms.data?.[0]?.realm ?? 'corral';
  const chosen = realm ?? defaultRealm;

  async function submit(e: FormEvent) {
    e.preventDefault();
    if (!name.trim() || !password) {
      setError('Enter a user name and a password.');
      return;
    }
    setBusy(true);
    setError('');
    try {
      await login(userID(name, chosen), password);
    } catch (err) {
      setError(loginErrorText(err));
      setBusy(false);
    }
  }

  return (
    <Center h="100vh" p="md">
      <Paper withBorder shadow="md" p="xl" w={380} component="form" onSubmit={submit} aria-label="Log in">
        <Stack>
          <Title order={2}>Corral</Title>
          {endedReason && !error && <Alert color="yellow" data-testid="login-notice">{endedReason}</Alert>}
          {error && <Alert color="red" role="alert" data-testid="login-error">{error}</Alert>}
          <TextInput label="User name" name="username" autoComplete="username" autoFocus value={name} onChange={(e) => setName(e.currentTarget.value)} />
          <PasswordInput label="Password" name="password" autoComplete="current-password" value={password} onChange={(e) => setPassword(e.currentTarget.value)} />
          <Select
            label="Realm"
            name="realm"
            data={(realms.data ?? [{ realm: 'corral', type: 'corral' }]).map((r) => ({ value: r.realm, label: `${r.realm} (${r.type}${r.comment ? ': ' + r.comment : ''})` }))}
            value={chosen}
            onChange={setRealm}
            allowDeselect={false}
          />
          <Button type="submit" loading={busy}>Log in</Button>
        </Stack>
      </Paper>
    </Center>
  );
}
