import { afterEach, expect, it, vi } from 'vitest';
import { cleanup, screen } from '@testing-library/react';
import { renderWith } from '../test/render';
import { ErrorBoundary } from './ErrorBoundary';

afterEach(cleanup);

function Boom({ msg }: { msg: string }): never {
  throw new Error(msg);
}

it.each([
  ['a crash', 'x is undefined', 'Something went wrong in this view', 'Try again'],
  ['a chunk gone after an upgrade', 'Failed to fetch dynamically imported module: /assets/a.js', 'This page needs a reload', 'Reload'],
])('shows %s', (_, msg, title, button) => {
  vi.spyOn(console, 'error').mockImplementation(() => {});
  renderWith(<ErrorBoundary><Boom msg={msg} /></ErrorBoundary>);
  expect(screen.getByText(title)).toBeTruthy();
  expect(screen.getByRole('button', { name: button })).toBeTruthy();
});
