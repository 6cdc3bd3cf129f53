import { useCallback, useEffect, useState } from 'preact/hooks';
import { getJson, sendJson } from '../api.ts';
import { live } from '../live.ts';
import type { Queue } from '../types.ts';
import { Confirm, ErrorLine } from '../ui.tsx';

/** Queues: what runs and waits, their limits; admins pause, resume and change the limit. */
export function QueuesPage() {
  const [queues, setQueues] = useState<Queue[]>([]);
  const [error, setError] = useState<unknown>();
  const [editing, setEditing] = useState<{ queue: Queue; value: string } | null>(null);
  const [pausing, setPausing] = useState<Queue | null>(null);

  const load = useCallback(async () => {
    try {
      setQueues((await getJson<{ queues: Queue[] }>('/v1/queues')).queues);
    } catch (err) {
      setError(err);
    }
  }, []);
  useEffect(() => {
    void load();
    // Counts change as jobs start and end.
    return live.subscribe((e) => {
      if (e.type === 'job' || e.type === 'reset') void load();
    });
  }, [load]);

  const save = async (queue: Queue, settings: Record<string, unknown>) => {
    try {
      await sendJson('PUT', `/v1/queues/${encodeURIComponent(queue.name)}`, settings);
      setError(undefined);
      await load();
    } catch (err) {
      setError(err);
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
                    onClick={() => setEditing({ queue: q, value: String(q.concurrency ?? '') })}
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
          onCancel={() => setEditing(null)}
          onConfirm={() => {
            const value = editing.value.trim();
            setEditing(null);
            void save(editing.queue, { concurrency: value === '' ? null : Number(value) });
          }}
        >
          <label>
            Most jobs running at once (empty: no limit)
            <input
              type="number"
              min="1"
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
            void save(q, { paused: !q.paused });
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
