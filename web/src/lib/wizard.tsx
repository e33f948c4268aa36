// What the create wizards share: the form state, a step's checks on
// "Next", and the server's field errors mapped back onto the form's fields
// with a jump to the first step that has one.
import { useEffect, useState, type Dispatch, type SetStateAction } from 'react';
import { Alert, Button, Group } from '@mantine/core';
import { ApiError, errorText, get } from '../api/client';

export interface WizardSpec<F> {
  steps: number;
  validate: (f: F) => Record<string, string>;
  stepOf: (formField: string) => number; // the step showing a form field
  formField: (serverField: string) => string; // a server field's form field
}

export function useWizard<F extends object>(initial: F, spec: WizardSpec<F>) {
  const [f, setF] = useState<F>(initial);
  const [step, setStep] = useState(0);
  const [errors, setErrors] = useState<Record<string, string>>({});
  const [serverError, setServerError] = useState('');
  const [busy, setBusy] = useState(false);
  const firstStep = (keys: string[]) => Math.min(...keys.map(spec.stepOf));
  /** A setter for one field; it clears that field's errors (and its sub-fields'). */
  const set = <K extends keyof F>(k: K) => (v: F[K]) => {
    setF((x) => ({ ...x, [k]: v }));
    setErrors((e) => Object.fromEntries(Object.entries(e).filter(([x]) => x !== k && !x.startsWith(`${String(k)}.`))));
  };
  const next = () => {
    const here = Object.fromEntries(Object.entries(spec.validate(f)).filter(([k]) => spec.stepOf(k) === step));
    setErrors(here);
    if (Object.keys(here).length === 0) setStep((s) => Math.min(spec.steps - 1, s + 1));
  };
  /** Checks the whole form, then sends it; a refusal comes back onto the fields. */
  const submit = async (send: (f: F) => Promise<void>) => {
    const e = spec.validate(f);
    if (Object.keys(e).length) {
      setErrors(e);
      setStep(firstStep(Object.keys(e)));
      return;
    }
    setBusy(true);
    setServerError('');
    try {
      await send(f);
    } catch (x) {
      setBusy(false);
      if (x instanceof ApiError && x.errors.length) {
        const fe: Record<string, string> = {};
        for (const [k, m] of Object.entries(x.fieldErrors())) fe[spec.formField(k)] = m;
        setErrors(fe);
        setStep(firstStep(Object.keys(fe)));
        setServerError(`The server refused the request (${x.detail || x.title}): see the marked field.`);
      } else setServerError(errorText(x));
    }
  };
  return { f, setF, set, step, setStep, errors, err: (k: string) => errors[k], next, submit, serverError, busy };
}

/** The wizard's error line and Back / Next / Create buttons. */
export function WizardFooter({ w, steps, onClose, onCreate }: {
  w: Pick<ReturnType<typeof useWizard>, 'serverError' | 'step' | 'setStep' | 'next' | 'busy'>; steps: number; onClose: () => void; onCreate: () => void;
}) {
  return (
    <>
      {w.serverError && <Alert color="red" mt="sm" data-testid="create-error">{w.serverError}</Alert>}
      <Group justify="space-between" mt="md">
        <Button variant="default" onClick={w.step === 0 ? onClose : () => w.setStep(w.step - 1)}>{w.step === 0 ? 'Cancel' : 'Back'}</Button>
        {w.step < steps - 1 ? <Button onClick={w.next}>Next</Button> : <Button onClick={onCreate} loading={w.busy} data-testid="create-finish">Create</Button>}
      </Group>
    </>
  );
}

/** Fills in the first node and the next free ID (the server reserves it for a few minutes). */
export function useGuestDefaults<F extends { node: string; vmid: number | '' }>(f: F, setF: Dispatch<SetStateAction<F>>, nodes: string[]) {
  useEffect(() => {
    if (!f.node && nodes[0]) setF((x) => ({ ...x, node: nodes[0] }));
  }, [nodes, f.node, setF]);
  useEffect(() => {
    get<{ vmid: number }>('/cluster/nextid').then((r) => setF((x) => (x.vmid === '' ? { ...x, vmid: r.vmid } : x)), () => {});
  }, [setF]);
}
