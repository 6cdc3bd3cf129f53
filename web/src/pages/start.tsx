import { useState } from 'preact/hooks';
import { ApiError, sendJson } from '../api.ts';
import { go } from '../router.ts';
import { ArgsError, splitArgs } from '../shell-words.ts';
import type { Job } from '../types.ts';
import { ErrorLine } from '../ui.tsx';

/** The start form: POST /v1/jobs. The server validates; its error names the field. */
export function StartPage() {
  const [error, setError] = useState<unknown>();
  const [field, setField] = useState<string | undefined>();
  const [busy, setBusy] = useState(false);

  const submit = async (e: Event) => {
    e.preventDefault();
    try {
      await send(new FormData(e.target as HTMLFormElement));
    } catch (err) {
      // Refused before it was sent (an unclosed quote in the arguments).
      setError(err);
      setField(err instanceof ArgsError ? err.field : undefined);
    }
  };

  const send = async (form: FormData) => {
    const text = (name: string) => String(form.get(name) ?? '').trim();
    const int = (name: string, scale = 1) =>
      text(name) === '' ? undefined : Math.round(Number(text(name)) * scale);
    const memoryMiB = int('memoryMiB', 1024 * 1024);
    const cpuMillis = int('cpuMillis');
    const body = {
      command: text('command'),
      ...(text('args') === '' ? {} : { args: splitArgs(String(form.get('args'))) }),
      shell: form.get('shell') === 'on',
      ...(text('name') === '' ? {} : { name: text('name') }),
      ...(text('cwd') === '' ? {} : { cwd: text('cwd') }),
      ...(text('queue') === '' ? {} : { queue: text('queue') }),
      ...(int('priority') === undefined ? {} : { priority: int('priority') }),
      ...(int('timeoutS', 1000) === undefined ? {} : { timeoutMs: int('timeoutS', 1000) }),
      ...(memoryMiB === undefined && cpuMillis === undefined
        ? {}
        : {
            limits: {
              ...(memoryMiB === undefined ? {} : { memoryBytes: memoryMiB }),
              ...(cpuMillis === undefined ? {} : { cpuMillis }),
            },
          }),
      ...(text('after') === ''
        ? {}
        : {
            after: text('after')
              .split(/[\s,]+/)
              .filter(Boolean),
          }),
    };
    setBusy(true);
    try {
      const job = await sendJson<Job>('POST', '/v1/jobs', body);
      go(`jobs/${job.id}`);
    } catch (err) {
      setError(err);
      setField(err instanceof ApiError ? err.field : undefined);
    } finally {
      setBusy(false);
    }
  };

  const bad = (name: string) => (field !== undefined && field.split(/[.[]/)[0] === name ? 'invalid' : '');

  return (
    <section>
      <h1>Start a job</h1>
      <form class="start-form" onSubmit={(e) => void submit(e)}>
        <label class={bad('command')}>
          Command
          <input name="command" required placeholder="/usr/bin/make or a shell line" />
        </label>
        <label class={bad('args')}>
          Arguments
          <input name="args" placeholder={`-j4 "with spaces"`} />
        </label>
        <label class="check">
          <input type="checkbox" name="shell" /> Run with /bin/sh -c (arguments become $1, $2…)
        </label>
        <label class={bad('name')}>
          Name
          <input name="name" placeholder="optional" />
        </label>
        <label class={bad('cwd')}>
          Working directory
          <input name="cwd" placeholder="your home" />
        </label>
        <div class="row">
          <label class={bad('queue')}>
            Queue
            <input name="queue" placeholder="default" />
          </label>
          <label class={bad('priority')}>
            Priority
            <input name="priority" type="number" step="1" placeholder="0" />
          </label>
          <label class={bad('timeoutMs')}>
            Timeout (s)
            <input name="timeoutS" type="number" min="0" step="any" placeholder="server default" />
          </label>
        </div>
        <div class="row">
          <label class={bad('limits')}>
            Memory limit (MiB)
            <input name="memoryMiB" type="number" min="1" step="1" />
          </label>
          <label class={bad('limits')}>
            CPU (thousandths of a CPU)
            <input name="cpuMillis" type="number" min="10" step="1" />
          </label>
        </div>
        <label class={bad('after')}>
          After (job ids that must succeed first)
          <input name="after" placeholder="id, id…" />
        </label>
        <ErrorLine error={error} />
        <div>
          <button type="submit" class="primary" disabled={busy}>
            Start
          </button>
        </div>
      </form>
    </section>
  );
}
