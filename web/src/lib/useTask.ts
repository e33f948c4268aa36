// Starting a task from a button: run the call, tell the user, and refresh
// the tasks panel so the new task shows at once.
import { useMutation, useQueryClient } from '@tanstack/react-query';
import { notifications } from '@mantine/notifications';
import { errorText } from '../api/client';
import { keys } from '../api/queries';

export function useTaskAction<V>(label: (v: V) => string, fn: (v: V) => Promise<unknown>, invalidate: ReadonlyArray<readonly unknown[]> = []) {
  const qc = useQueryClient();
  return useMutation({
    mutationFn: fn,
    onSuccess: (_, v) => {
      qc.invalidateQueries({ queryKey: keys.tasks });
      for (const k of invalidate) qc.invalidateQueries({ queryKey: k });
      notifications.show({ message: `${label(v)}: started`, autoClose: 2500 });
    },
    onError: (e, v) => notifications.show({ color: 'red', title: `${label(v)} failed`, message: errorText(e), autoClose: 8000 }),
  });
}
