import type { ComponentChildren, RefObject } from 'preact';
import { useEffect, useLayoutEffect, useRef, useState } from 'preact/hooks';
import type { JobStatus } from './types.ts';

export function StatusBadge({ status }: { status: JobStatus }) {
  return <span class={`badge status-${status}`}>{status.replace('_', ' ')}</span>;
}

/**
 * A modal asking to confirm an action; Enter confirms (in a field of it too), Escape cancels. It
 * takes the focus once, when it opens: its first field, else its action button. Taking it on every
 * render (the job page renders every second, the queues page on every job event) moved it back
 * to the action under a keyboard user on Cancel, and out of a field after its first keystroke.
 * `busy` stops a second confirm while the first runs (the button stays focusable: disabling it
 * would drop the focus out of the dialog); `error` shows why it failed, in the dialog.
 */
export function Confirm(props: {
  title: string;
  children?: ComponentChildren;
  action: string;
  danger?: boolean;
  busy?: boolean;
  error?: unknown;
  onConfirm: () => void;
  onCancel: () => void;
}) {
  const dialog = useRef<HTMLFormElement>(null);
  const onCancel = useRef(props.onCancel);
  onCancel.current = props.onCancel;
  // A layout effect: the focus is in place when the dialog first shows, before a key can land
  // elsewhere (an effect runs a frame later).
  useLayoutEffect(() => {
    const box = dialog.current;
    const first =
      box?.querySelector<HTMLElement>('input, select, textarea') ??
      box?.querySelector('.modal-actions [type=submit]');
    (first as HTMLElement | null | undefined)?.focus();
    const onKey = (e: KeyboardEvent) => {
      if (e.key === 'Escape') onCancel.current();
    };
    addEventListener('keydown', onKey);
    return () => removeEventListener('keydown', onKey);
  }, []);
  return (
    <div class="modal-backdrop">
      <form
        ref={dialog}
        class="modal"
        role="dialog"
        aria-modal="true"
        aria-label={props.title}
        onSubmit={(e) => {
          e.preventDefault();
          if (!props.busy) props.onConfirm();
        }}
      >
        <h2>{props.title}</h2>
        {props.children}
        <ErrorLine error={props.error} />
        <div class="modal-actions">
          <button type="button" onClick={props.onCancel}>
            Cancel
          </button>
          <button
            type="submit"
            class={props.danger ? 'danger' : 'primary'}
            data-testid="confirm"
            aria-disabled={props.busy}
          >
            {props.action}
          </button>
        </div>
      </form>
    </div>
  );
}

/** What an error says: its message, or the thrown value as text. */
export function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

export function ErrorLine({ error }: { error: unknown }) {
  if (error === undefined || error === null) return null;
  const message = errorText(error);
  return (
    <p class="error" role="alert">
      {message}
    </p>
  );
}

/**
 * Newer/Older buttons over a cursor-paged list: `cursors` is the stack of cursors of the pages
 * before this one (empty on the newest page), `next` the cursor of the page after it (null: none).
 */
export function Pager(props: {
  cursors: readonly string[];
  next: string | null;
  onChange: (cursors: string[]) => void;
}) {
  const { cursors, next, onChange } = props;
  return (
    <div class="pager">
      <button type="button" disabled={cursors.length === 0} onClick={() => onChange(cursors.slice(0, -1))}>
        Newer
      </button>
      <button
        type="button"
        disabled={next === null}
        // Until the page asked for answers, `next` is still the cursor just pushed: a second click
        // meanwhile would push it again (the pager a page ahead of the rows).
        onClick={() => next && next !== cursors.at(-1) && onChange([...cursors, next])}
      >
        Older
      </button>
    </div>
  );
}

/**
 * A filter box applied when it changes (Enter or leaving it), that keeps what is being typed.
 *
 * Its text lives in its own state, updated on every keystroke. A box with only `value` and
 * `onChange` would be reset to the applied filter by any render of its page before the change:
 * the jobs list renders every second (running durations) and on every live event, so a search
 * being typed was wiped, and the change that should have applied it never came. Escape puts the
 * applied filter back before the page's shortcut leaves the box, so it gives up what was typed
 * rather than applying it.
 */
export function FilterInput(props: {
  /** The applied filter; the box shows it again when it changes from outside. */
  value: string;
  onApply: (value: string) => void;
  name?: string;
  placeholder?: string;
  maxLength?: number;
  inputRef?: RefObject<HTMLInputElement>;
}) {
  const { value, onApply, inputRef, ...attributes } = props;
  const [draft, setDraft] = useState(value);
  // What this box applied last: the change of `value` it causes must not reset the draft, which
  // the user may already have typed on from (the effect runs a frame after the Enter).
  const applied = useRef(value);
  useEffect(() => {
    if (value !== applied.current) {
      applied.current = value;
      setDraft(value);
    }
  }, [value]);
  return (
    <input
      {...attributes}
      ref={inputRef}
      value={draft}
      onInput={(e) => setDraft((e.target as HTMLInputElement).value)}
      onChange={(e) => {
        applied.current = (e.target as HTMLInputElement).value;
        onApply(applied.current);
      }}
      onKeyDown={(e) => {
        if (e.key !== 'Escape') return;
        (e.target as HTMLInputElement).value = value;
        setDraft(value);
      }}
    />
  );
}
