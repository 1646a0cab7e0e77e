import type { ComponentChildren } from 'preact';
import { useState } from 'preact/hooks';
import { nodeHref } from './router';

export function StateBadge({ state, target }: { state: string; target?: string | null }) {
  return (
    <span class="state-line">
      <span class={`badge state-${state.replace(/\s+/g, '-')}`} data-state={state}>
        {state}
      </span>
      {target ? <span class="target"> → {target}</span> : null}
    </span>
  );
}

export function NodeLink({ hostname }: { hostname: string }) {
  return (
    <a class="host" href={nodeHref(hostname)}>
      {hostname}
    </a>
  );
}

export function Time({ at }: { at: string | null | undefined }) {
  if (!at) return <span class="muted">–</span>;
  const date = new Date(at);
  return <time dateTime={at} title={at}>{date.toLocaleString()}</time>;
}

export function ErrorText({ error }: { error: string | undefined | null }) {
  return error ? (
    <p class="error" role="alert">
      {error}
    </p>
  ) : null;
}

export function Loading({ error }: { error?: string }) {
  return error ? <ErrorText error={error} /> : <p class="muted">Loading…</p>;
}

/**
 * A button that asks before it acts: the dialog says what will happen, runs `run` on confirmation and
 * stays open with the API's own error text when the request is refused.
 */
export function ConfirmButton(props: {
  label: string;
  title: string;
  children: ComponentChildren;
  run: () => Promise<unknown>;
  done?: (result: unknown) => void;
  disabled?: boolean;
  danger?: boolean;
  confirmLabel?: string;
}) {
  const [open, setOpen] = useState(false);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | undefined>();
  const close = () => {
    setOpen(false);
    setError(undefined);
  };
  const confirm = async () => {
    setBusy(true);
    setError(undefined);
    try {
      const result = await props.run();
      setOpen(false);
      props.done?.(result);
    } catch (err) {
      setError((err as Error).message);
    } finally {
      setBusy(false);
    }
  };
  return (
    <>
      <button type="button" class={props.danger ? 'danger' : ''} disabled={props.disabled} onClick={() => setOpen(true)}>
        {props.label}
      </button>
      {open ? (
        <div class="overlay" onClick={(e) => e.target === e.currentTarget && !busy && close()}>
          <div class="dialog" role="dialog" aria-modal="true" aria-label={props.title}>
            <h2>{props.title}</h2>
            <div class="dialog-body">{props.children}</div>
            <ErrorText error={error} />
            <div class="dialog-buttons">
              <button type="button" onClick={close} disabled={busy}>
                {error ? 'Close' : 'Cancel'}
              </button>
              <button type="button" class={`primary ${props.danger ? 'danger' : ''}`} onClick={() => void confirm()} disabled={busy}>
                {busy ? 'Working…' : (props.confirmLabel ?? props.label)}
              </button>
            </div>
          </div>
        </div>
      ) : null}
    </>
  );
}

export function Pager({ offset, limit, total, go }: { offset: number; limit: number; total: number; go: (offset: number) => void }) {
  const last = Math.min(offset + limit, total);
  return (
    <div class="pager">
      <button type="button" disabled={offset === 0} onClick={() => go(Math.max(0, offset - limit))}>
        ← Previous
      </button>
      <span>{total === 0 ? 'none' : `${offset + 1}–${last} of ${total}`}</span>
      <button type="button" disabled={last >= total} onClick={() => go(offset + limit)}>
        Next →
      </button>
    </div>
  );
}

/** A JSON value as a readable nested list (facts, driver_info, results). */
export function Json({ value }: { value: unknown }) {
  return <pre class="json">{JSON.stringify(value, null, 2)}</pre>;
}
