// Keeps a crash in one view from blanking the whole UI, and says what to do
// when a lazily loaded part is gone (the daemon was upgraded meanwhile).
import { Component, type ErrorInfo, type ReactNode } from 'react';
import { Alert, Button, Group, Text } from '@mantine/core';

interface State {
  error: Error | null;
}

export class ErrorBoundary extends Component<{ children: ReactNode }, State> {
  state: State = { error: null };

  static getDerivedStateFromError(error: Error): State {
    return { error };
  }

  componentDidCatch(error: Error, info: ErrorInfo) {
    console.error('view crashed:', error, info.componentStack);
  }

  render() {
    const { error } = this.state;
    if (!error) return this.props.children;
    const stale = /dynamically imported module|Importing a module script failed|Failed to fetch/i.test(error.message);
    return (
      <Alert color="red" title={stale ? 'This page needs a reload' : 'Something went wrong in this view'} data-testid="view-error">
        <Text size="sm">{stale ? 'Corral was updated on the server since this page was loaded.' : error.message}</Text>
        <Group mt="sm">
          {stale ? (
            <Button size="xs" onClick={() => window.location.reload()}>Reload</Button>
          ) : (
            <Button size="xs" variant="default" onClick={() => this.setState({ error: null })}>Try again</Button>
          )}
        </Group>
      </Alert>
    );
  }
}
