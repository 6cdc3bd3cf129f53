import { FitAddon } from '@xterm/addon-fit';
import { SearchAddon } from '@xterm/addon-search';
import { Terminal } from '@xterm/xterm';
import '@xterm/xterm/css/xterm.css';
import { useEffect, useRef, useState } from 'preact/hooks';
import { ApiError, request } from './api.ts';
import { bytes } from './format.ts';
import { readSse } from './sse.ts';
import type { Job } from './types.ts';
import { ErrorLine } from './ui.tsx';

export type OutputView = 'all' | 'stdout' | 'stderr';

/** Bytes shown when a view opens: its last 512 KiB, read from a cursor near the end. */
const TAIL_BYTES = 512 * 1024;

/**
 * How long the view is now: a HEAD of the output answers it (`X-Jobworker-End`) without reading
 * a byte. Failing that, the job's own counts (final once it has finished).
 */
async function viewEnd(job: Job, view: OutputView, signal: AbortSignal): Promise<number> {
  try {
    const head = await request(`/v1/jobs/${job.id}/output?stream=${view}`, { method: 'HEAD', signal });
    const end = Number(head.headers.get('X-Jobworker-End'));
    if (Number.isSafeInteger(end) && end >= 0) return end;
  } catch {
    // the read below reports what is wrong
  }
  const { stdout, stderr } = job.outputBytes;
  return view === 'stdout' ? stdout : view === 'stderr' ? stderr : stdout + stderr;
}

/**
 * A job's output in a real terminal (@xterm/xterm): ANSI colours and cursor moves render as a
 * terminal would, and nothing of it is ever HTML. It opens at the end: the read starts a tail's
 * length before the end (a cursor of the output API), so a 1 GiB output opens as fast as a small
 * one; a running job is followed over fetch streaming (server-sent events) until it ends.
 * Hyperlinks (OSC 8) do nothing when clicked, and OSC 52 (clipboard) is not implemented by
 * xterm's core: output cannot reach the clipboard or open a page.
 */
export function TerminalView({ job, view }: { job: Job; view: OutputView }) {
  const host = useRef<HTMLDivElement>(null);
  const [term, setTerm] = useState<{ terminal: Terminal; search: SearchAddon } | null>(null);
  const [state, setState] = useState<'loading' | 'following' | 'done' | 'error'>('loading');
  const [message, setMessage] = useState('');
  const [query, setQuery] = useState('');
  const final = job.finishedAt !== null;

  useEffect(() => {
    if (!host.current) return;
    const terminal = new Terminal({
      convertEol: true,
      scrollback: 100_000,
      disableStdin: true,
      cursorBlink: false,
      fontSize: 13,
      fontFamily: 'ui-monospace, "DejaVu Sans Mono", Menlo, Consolas, monospace',
      allowProposedApi: true,
      theme: { background: '#0d1117', foreground: '#d6dde6' },
      // OSC 8 links: shown, inert. No navigation, no confirm() dialog.
      linkHandler: { activate: () => undefined, allowNonHttpProtocols: false },
    });
    const fit = new FitAddon();
    const search = new SearchAddon();
    terminal.loadAddon(fit);
    terminal.loadAddon(search);
    terminal.open(host.current);
    fit.fit();
    const observer = new ResizeObserver(() => fit.fit());
    observer.observe(host.current);
    setTerm({ terminal, search });
    return () => {
      observer.disconnect();
      terminal.dispose();
      setTerm(null);
    };
  }, []);

  // (Re)load when the view changes or the job is first seen; a following stream keeps going.
  useEffect(() => {
    if (!term) return;
    const controller = new AbortController();
    // A reset in the stream of writes (RIS), not `reset()`: xterm parses what it was given in
    // slices, and `reset()` would leave the rest of the previous view's bytes to be drawn above
    // this one's.
    term.terminal.write('\x1bc');
    setState('loading');
    void stream(job, view, term.terminal, controller.signal, (s, m) => {
      setState(s);
      setMessage(m ?? '');
    });
    return () => controller.abort();
    // Only the view and the job's identity restart the stream; status changes do not.
  }, [term, view, job.id]);

  useEffect(() => {
    const onSearch = () =>
      host.current?.closest('.output')?.querySelector<HTMLInputElement>('input.term-search')?.focus();
    addEventListener('jobworker:search', onSearch);
    return () => removeEventListener('jobworker:search', onSearch);
  }, []);

  const find = (backwards: boolean) => {
    if (!term || query === '') return;
    const options = { decorations: { matchOverviewRuler: '#888', activeMatchColorOverviewRuler: '#ff0' } };
    if (backwards) term.search.findPrevious(query, options);
    else term.search.findNext(query, options);
  };

  // One download at a time (each reads the whole view), and a failure said (a job deleted
  // meanwhile, the server at capacity, the network).
  const [downloading, setDownloading] = useState(false);
  const [downloadError, setDownloadError] = useState<unknown>();
  const download = async () => {
    if (downloading) return;
    setDownloading(true);
    setDownloadError(undefined);
    try {
      const res = await request(`/v1/jobs/${job.id}/output?stream=${view}`);
      const blob = await res.blob();
      const url = URL.createObjectURL(blob);
      const a = document.createElement('a');
      a.href = url;
      a.download = `${job.name ?? job.id}.${view === 'all' ? 'log' : view}`;
      a.click();
      setTimeout(() => URL.revokeObjectURL(url), 10_000);
    } catch (err) {
      setDownloadError(err);
    } finally {
      setDownloading(false);
    }
  };

  return (
    <div class="output">
      <div class="output-bar">
        <span class={`follow-state ${state}`} data-testid="output-state">
          {state === 'following' ? 'live' : state === 'done' ? (final ? 'complete' : 'up to date') : state}
        </span>
        {message ? <span class="muted">{message}</span> : null}
        <input
          class="term-search"
          type="search"
          placeholder="Search output"
          value={query}
          onInput={(e) => setQuery((e.target as HTMLInputElement).value)}
          onKeyDown={(e) => {
            if (e.key === 'Enter') find(e.shiftKey);
          }}
        />
        <button type="button" onClick={() => find(true)} title="Previous match (Shift+Enter)">
          ↑
        </button>
        <button type="button" onClick={() => find(false)} title="Next match (Enter)">
          ↓
        </button>
        <button type="button" onClick={() => term?.terminal.scrollToBottom()} title="Jump to end (End)">
          End
        </button>
        <button type="button" disabled={downloading} onClick={() => void download()}>
          {downloading ? 'Downloading…' : 'Download'}
        </button>
      </div>
      <ErrorLine error={downloadError} />
      <div class="terminal" ref={host} data-testid="terminal" />
    </div>
  );
}

async function stream(
  job: Job,
  view: OutputView,
  terminal: Terminal,
  signal: AbortSignal,
  report: (state: 'loading' | 'following' | 'done' | 'error', message?: string) => void,
): Promise<void> {
  const follow = job.finishedAt === null;
  let cursor = Math.max(0, (await viewEnd(job, view, signal)) - TAIL_BYTES);
  if (signal.aborted) return;
  // Said once the read is answered: a tail that starts too far is started earlier (BAD_CURSOR).
  let toldSkipped = false;
  let lastEventId: string | undefined;
  let attempts = 0;
  while (!signal.aborted) {
    try {
      const res = await request(
        `/v1/jobs/${job.id}/output?stream=${view}&cursor=${cursor}&follow=${follow}`,
        {
          headers: {
            Accept: 'text/event-stream',
            ...(lastEventId === undefined ? {} : { 'Last-Event-ID': lastEventId }),
          },
          signal,
        },
      );
      if (signal.aborted) return;
      if (!toldSkipped && cursor > 0) {
        terminal.write(`\x1b[2m[${bytes(cursor)} before this not shown: Download has all of it]\x1b[0m\r\n`);
      }
      toldSkipped = true;
      if (res.status === 204 || !res.body) {
        report('done');
        return;
      }
      report(follow ? 'following' : 'loading');
      // Answered: a later cut starts its waits afresh (a proxy may cut idle streams now and then).
      attempts = 0;
      for await (const e of readSse(res.body, signal)) {
        // Events parsed before an abort (a switch of view) are not this view's to write.
        if (signal.aborted) return;
        if (e.id !== null) lastEventId = e.id;
        if (e.event === 'output') {
          const event = JSON.parse(e.data) as { data: string; cursor: string };
          terminal.write(decode(event.data));
          cursor = Number(event.cursor);
        } else if (e.event === 'truncated') {
          const event = JSON.parse(e.data) as { skippedBytes: number; cursor: string };
          terminal.write(`\x1b[2m[${bytes(event.skippedBytes)} dropped by retention]\x1b[0m\r\n`);
          cursor = Number(event.cursor);
        } else if (e.event === 'end') {
          report('done');
          return;
        }
      }
    } catch (err) {
      if (signal.aborted) return;
      // The tail's start was past what the combined view has observed yet: start a tail earlier.
      if (err instanceof ApiError && err.code === 'BAD_CURSOR' && lastEventId === undefined && cursor > 0) {
        cursor = Math.max(0, cursor - TAIL_BYTES);
        continue;
      }
      if (err instanceof ApiError && err.status < 500 && err.status !== 429) {
        report('error', err.message);
        return;
      }
    }
    if (signal.aborted) return;
    // Cut short (server restart, network): resume from the last event after a pause.
    attempts++;
    report('loading', 'reconnecting');
    await new Promise((resolve) => setTimeout(resolve, Math.min(500 * 2 ** attempts, 10_000)));
  }
}

function decode(base64: string): Uint8Array {
  const text = atob(base64);
  const out = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) out[i] = text.charCodeAt(i);
  return out;
}
