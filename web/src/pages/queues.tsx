import { useCallback, useEffect, useRef, useState } from 'preact/hooks';
import { getJson, sendJson } from '../api.ts';
import { live } from '../live.ts';
import type { Queue } from '../types.ts';
import { Confirm, ErrorLine } from '../ui.tsx';

/** The job events that change a queue's counts. */
const COUNTED = new Set(['job:queued', 'job:started', 'job:finished']);

/** The limit dialog: its queue, what is typed, whether a save runs, and why one failed. */
interface Editing {
  opening: number;
  queue: Queue;
  value: string;
  error?: unknown;
  busy?: boolean;
}

/** Queues: what runs and waits, their limits; admins pause, resume and change the limit. */
export function QueuesPage() {
  const [queues, setQueues] = useState<Queue[]>([]);
  const [error, setError] = useState<unknown>();
  const [editing, setEditing] = useState<Editing | null>(null);
  // Each opening of the dialog is its own: a save still on its way when the dialog was closed and
  // opened again (for the same queue or another) leaves the new one alone.
  const openings = useRef(0);
  const [pausing, setPausing] = useState<Queue | null>(null);

  // One list request at a time, and at most one more after it: job events come as fast as jobs
  // start and end (a request for each sent hundreds a second), and answers in the order asked.
  const loading = useRef<{ again: boolean } | null>(null);
  const load = useCallback(async () => {
    if (loading.current) {
      loading.current.again = true;
      return;
    }
    const state = { again: false };
    loading.current = state;
    try {
      do {
        state.again = false;
        try {
          setQueues((await getJson<{ queues: Queue[] }>('/v1/queues')).queues);
          setError(undefined);
        } catch (err) {
          setError(err);
        }
      } while (state.again && loading.current === state);
    } finally {
      if (loading.current === state) loading.current = null;
    }
  }, []);
  useEffect(() => {
    void load();
    // Counts change as jobs queue, start and end (progress, pause and resume change none: a
    // paused job counts as running).
    const unsubscribe = live.subscribe((e) => {
      if ((e.type === 'job' && COUNTED.has(e.kind)) || e.type === 'reset') void load();
    });
    return () => {
      unsubscribe();
      loading.current = null;
    };
  }, [load]);

  /** Saves a queue's settings; the error, if any, is the caller's to show. */
  const save = async (queue: Queue, settings: Record<string, unknown>) => {
    await sendJson('PUT', `/v1/queues/${encodeURIComponent(queue.name)}`, settings);
    // Not awaited: under steady job traffic the reloads run back to back, and the dialog would
    // wait for all of them.
    void load();
  };

  const saveLimit = async () => {
    if (!editing || editing.busy) return;
    const text = editing.value.trim();
    if (text !== '' && !/^[1-9]\d*$/.test(text)) {
      setEditing({
        ...editing,
        error: new Error('The limit is a whole number of at least 1, or empty for none.'),
      });
      return;
    }
    const queue = editing.queue;
    setEditing({ ...editing, busy: true, error: undefined });
    // The dialog may have been closed, and opened again, while this one saved.
    const opening = editing.opening;
    const same = (now: Editing | null): now is Editing => now !== null && now.opening === opening;
    try {
      await save(queue, { concurrency: text === '' ? null : Number(text) });
      setEditing((now) => (same(now) ? null : now));
    } catch (err) {
      // The dialog stays open with what was typed, and says why.
      setEditing((now) => (same(now) ? { ...now, busy: false, error: err } : now));
    }
  };

  return (
    <section>
      <h1>Queues</h1>
      <ErrorLine error={error} />
      <div class="table-wrap">
        <table>
          <thead>
            <tr>
              <th>Queue</th>
              <th>Running</th>
              <th>Waiting</th>
              <th>Limit</th>
              <th>Max waiting</th>
              <th>State</th>
              <th />
            </tr>
          </thead>
          <tbody>
            {queues.map((q) => (
              <tr key={q.name} data-queue={q.name}>
                <td data-label="Queue">{q.name}</td>
                <td data-label="Running">{q.running}</td>
                <td data-label="Waiting">{q.waiting}</td>
                <td data-label="Limit">{q.concurrency ?? 'none'}</td>
                <td data-label="Max waiting">{q.maxWaiting ?? 'none'}</td>
                <td data-label="State">
                  {q.paused ? <span class="badge status-paused">paused</span> : 'open'}
                </td>
                <td class="actions">
                  <button
                    type="button"
                    onClick={() =>
                      setEditing({
                        opening: ++openings.current,
                        queue: q,
                        value: String(q.concurrency ?? ''),
                      })
                    }
                  >
                    Limit…
                  </button>
                  <button type="button" onClick={() => setPausing(q)}>
                    {q.paused ? 'Resume' : 'Pause'}
                  </button>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      {editing ? (
        <Confirm
          title={`Limit of ${editing.queue.name}`}
          action="Save"
          busy={editing.busy}
          error={editing.error}
          onCancel={() => setEditing(null)}
          onConfirm={() => void saveLimit()}
        >
          <label>
            Most jobs running at once (empty: no limit)
            <input
              inputMode="numeric"
              name="concurrency"
              value={editing.value}
              onInput={(e) => setEditing({ ...editing, value: (e.target as HTMLInputElement).value })}
            />
          </label>
        </Confirm>
      ) : null}
      {pausing ? (
        <Confirm
          title={`${pausing.paused ? 'Resume' : 'Pause'} ${pausing.name}?`}
          action={pausing.paused ? 'Resume' : 'Pause'}
          onCancel={() => setPausing(null)}
          onConfirm={() => {
            const q = pausing;
            setPausing(null);
            save(q, { paused: !q.paused }).then(() => setError(undefined), setError);
          }}
        >
          <p>
            {pausing.paused
              ? 'Waiting jobs start again as slots free up.'
              : 'Nothing new starts from a paused queue; running jobs go on.'}
          </p>
        </Confirm>
      ) : null}
    </section>
  );
}
