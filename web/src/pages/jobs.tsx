import { useCallback, useEffect, useRef, useState } from 'preact/hooks';
import { getJson, query } from '../api.ts';
import { commandLine, runTime, time, visible } from '../format.ts';
import { isLaterPhase, isOlderNews, isUnordered } from '../job-news.ts';
import { live } from '../live.ts';
import { go } from '../router.ts';
import type { Job, JobStatus } from '../types.ts';
import { ErrorLine, FilterInput, Pager, StatusBadge } from '../ui.tsx';

const STATUSES: JobStatus[] = [
  'queued',
  'running',
  'paused',
  'succeeded',
  'failed',
  'stopped',
  'timed_out',
  'cancelled',
  'lost',
];

const PAGE = 50;

/** The most rows the first page grows to with live arrivals before it is loaded afresh. */
const MAX_ROWS = 4 * PAGE;

/** The server's longest `text` filter (src/store/list-query.ts, MAX_TEXT_CHARS). */
const MAX_TEXT = 200;

interface Filters {
  status: string;
  owner: string;
  queue: string;
  label: string;
  text: string;
}

/**
 * One box for both: what looks like the start of an id (4 or more hex digits and dashes) is an
 * id prefix, anything else a text search of names and command lines.
 */
function searchOf(text: string): { idPrefix?: string; text?: string } {
  const trimmed = text.trim();
  if (trimmed === '') return {};
  if (/^[0-9a-f-]{4,36}$/i.test(trimmed)) return { idPrefix: trimmed.toLowerCase() };
  return { text: trimmed };
}

/** Lower-cases ASCII letters only, as SQLite's `lower` does for the server's text filter. */
function asciiLower(text: string): string {
  return text.replace(/[A-Z]/g, (c) => c.toLowerCase());
}

/**
 * The list: one page of GET /v1/jobs at a time, paged by `nextCursor` (an index range on the
 * server, as fast on page 20 000 as on page 1), kept current by the live events.
 */
export function JobsPage() {
  const [filters, setFilters] = useState<Filters>({
    status: '',
    owner: '',
    queue: '',
    label: '',
    text: '',
  });
  const [jobs, setJobs] = useState<Job[]>([]);
  // The cursors of the pages before this one (to go back), and of the next.
  const [cursors, setCursors] = useState<string[]>([]);
  const [next, setNext] = useState<string | null>(null);
  const [error, setError] = useState<unknown>();
  const [now, setNow] = useState(Date.now());
  const search = useRef<HTMLInputElement>(null);
  const cursor = cursors.at(-1);

  // Answers may come out of order (filters typed while a list is on its way): only the answer to
  // the latest request is shown, or a late one would put back rows the filters now exclude.
  const latest = useRef(0);
  // The jobs live events told of while the latest list was on its way, the last news of each: the
  // answer may be older than they are (a job that finished meanwhile would show running for good,
  // as a finished job sends no further event), so they are applied to it again.
  const heardDuringLoad = useRef<Map<string, Job> | null>(null);
  // The rules the rows shown were loaded with: the filters, whether it is the first page, and the
  // id its next page continues after (null: it holds every match). Undefined while no list is
  // shown (before the first answer, after a failed one), when live jobs join nothing. A ref, set
  // with the rows: the live handler must judge by the rules of the rows it changes, and an effect
  // would hand it new ones a frame after the rows.
  const shownWith = useRef<ListRules | undefined>(undefined);
  const load = useCallback(async () => {
    const mine = ++latest.current;
    const heard = new Map<string, Job>();
    heardDuringLoad.current = heard;
    try {
      const find = searchOf(filters.text);
      const page = await getJson<{ jobs: Job[]; nextCursor: string | null }>(
        `/v1/jobs${query({
          status: filters.status,
          owner: filters.owner.trim(),
          queue: filters.queue.trim(),
          label: filters.label.trim(),
          idPrefix: find.idPrefix,
          text: find.text,
          limit: PAGE,
          cursor,
        })}`,
      );
      if (mine !== latest.current) return;
      heardDuringLoad.current = null;
      const rules: ListRules = {
        filters,
        firstPage: cursor === undefined,
        boundary: page.nextCursor === null ? null : (page.jobs.at(-1)?.id ?? null),
      };
      const shown = new Map(page.jobs.map((job) => [job.id, job]));
      // A row of the answer is replaced only by news of a later phase: news of the same phase may
      // be older than the answer (a progress event sent before a pause whose own event is on its
      // way). Of the same phase and another status, it cannot be ordered against the row: the job
      // is read again.
      const news: Job[] = [];
      const unsure: Job[] = [];
      for (const job of heard.values()) {
        const row = shown.get(job.id);
        if (row === undefined || isLaterPhase(row, job)) news.push(job);
        else if (isUnordered(row, job)) unsure.push(job);
      }
      shownWith.current = rules;
      setJobs(news.reduce((list, job) => withNews(list, job, rules), page.jobs));
      setNext(page.nextCursor);
      setError(undefined);
      for (const job of unsure) {
        getJson<Job>(`/v1/jobs/${encodeURIComponent(job.id)}`).then(
          (now) => mine === latest.current && setJobs((list) => withNews(list, now, rules)),
          () => undefined, // gone meanwhile (deleted): its next event, or the next load, tells
        );
      }
    } catch (err) {
      if (mine !== latest.current) return;
      heardDuringLoad.current = null;
      // The rows shown were for the filters before: under the new ones they would mislead.
      shownWith.current = undefined;
      setJobs([]);
      setNext(null);
      setError(err);
    }
  }, [filters, cursor]);

  useEffect(() => {
    void load();
  }, [load]);

  // Live: a job on this page changes in place, or leaves it when it no longer matches the filters
  // (a finished job under `status=running`); a job that comes to match joins the first page where
  // the server would list it; a reset reloads.
  useEffect(
    () =>
      live.subscribe((event) => {
        if (event.type === 'reset') {
          void load();
          return;
        }
        if (event.type !== 'job') return;
        heardDuringLoad.current?.set(event.job.id, event.job);
        const rules = shownWith.current;
        if (rules === undefined) return;
        setJobs((list) => withNews(list, event.job, rules));
      }),
    [load],
  );

  // The first page grows as jobs arrive (trimming it would make "Older" skip the rows trimmed, as
  // its cursor continues after the page as loaded); past MAX_ROWS it is loaded afresh, once at a
  // time: each arrival meanwhile would otherwise ask again (and make the answer before stale). The
  // refresh is on its way while it is still the latest request (a newer load supersedes it).
  const refreshing = useRef<number | null>(null);
  useEffect(() => {
    if (cursor !== undefined || jobs.length <= MAX_ROWS) return;
    if (refreshing.current !== null && refreshing.current === latest.current) return;
    const done = load();
    const mine = latest.current;
    refreshing.current = mine;
    void done.finally(() => {
      if (refreshing.current === mine) refreshing.current = null;
    });
  }, [jobs.length, cursor, load]);

  // Running durations tick.
  useEffect(() => {
    const timer = setInterval(() => setNow(Date.now()), 1000);
    return () => clearInterval(timer);
  }, []);

  useEffect(() => {
    const onFocusSearch = () => search.current?.focus();
    addEventListener('jobworker:search', onFocusSearch);
    return () => removeEventListener('jobworker:search', onFocusSearch);
  }, []);

  const apply = (key: keyof Filters) => (value: string) => {
    setCursors([]);
    setFilters((current) => ({ ...current, [key]: value }));
  };

  return (
    <section>
      <div class="page-head">
        <h1>Jobs</h1>
        <button type="button" class="primary" onClick={() => go('start')}>
          Start a job
        </button>
      </div>
      <form class="filters" onSubmit={(e) => e.preventDefault()}>
        <label>
          Status
          <select
            value={filters.status}
            onChange={(e) => apply('status')((e.target as HTMLSelectElement).value)}
            name="status"
          >
            <option value="">any</option>
            {STATUSES.map((s) => (
              <option value={s}>{s}</option>
            ))}
          </select>
        </label>
        <label>
          Owner
          <FilterInput value={filters.owner} onApply={apply('owner')} name="owner" placeholder="user" />
        </label>
        <label>
          Queue
          <FilterInput value={filters.queue} onApply={apply('queue')} name="queue" placeholder="queue" />
        </label>
        <label>
          Label
          <FilterInput value={filters.label} onApply={apply('label')} name="label" placeholder="key=value" />
        </label>
        <label class="grow">
          Search
          <FilterInput
            inputRef={search}
            value={filters.text}
            onApply={apply('text')}
            name="text"
            maxLength={MAX_TEXT}
            placeholder="name or command line, or start of an id  ( / )"
          />
        </label>
      </form>
      <ErrorLine error={error} />
      <div class="table-wrap">
        <table class="jobs">
          <thead>
            <tr>
              <th>Status</th>
              <th>Name</th>
              <th>Command</th>
              <th>Owner</th>
              <th>Queue</th>
              <th>Started</th>
              <th>Duration</th>
              <th>Exit</th>
            </tr>
          </thead>
          <tbody>
            {jobs.map((job) => (
              <tr key={job.id} data-job-id={job.id} onClick={() => go(`jobs/${job.id}`)}>
                <td data-label="Status">
                  <StatusBadge status={job.status} />
                </td>
                <td data-label="Name">
                  <a href={`#/jobs/${job.id}`}>
                    {job.name === null ? job.id.slice(0, 8) : visible(job.name)}
                  </a>
                </td>
                <td data-label="Command" class="mono ellipsis">
                  {commandLine(job)}
                </td>
                <td data-label="Owner">{job.owner}</td>
                <td data-label="Queue">{job.queue}</td>
                <td data-label="Started">{time(job.startedAt)}</td>
                <td data-label="Duration">{runTime(job, now)}</td>
                <td data-label="Exit">{job.exitCode ?? job.signal ?? ''}</td>
              </tr>
            ))}
          </tbody>
        </table>
        {jobs.length === 0 && error === undefined ? <p class="empty">No jobs.</p> : null}
      </div>
      <Pager cursors={cursors} next={next} onChange={setCursors} />
    </section>
  );
}

/**
 * The list with the news of one job: its row replaced, or taken out when the job no longer
 * matches the filters; or the job put in where the server would list it (newest first, by id)
 * when it matches and belongs on this page: the first page, before the id its next page continues
 * after (`boundary`; null when the page holds every match). News older than the row shown (`isOlderNews`) changes nothing.
 */
/** The rules a list was loaded with: what decides where live news goes. */
interface ListRules {
  readonly filters: Filters;
  readonly firstPage: boolean;
  /** The id the next page continues after; null when this page holds every match. */
  readonly boundary: string | null;
}

function withNews(list: readonly Job[], job: Job, where: ListRules): Job[] {
  const i = list.findIndex((j) => j.id === job.id);
  if (i !== -1) {
    if (isOlderNews(list[i]!, job)) return list as Job[];
    if (!matches(job, where.filters)) return list.filter((j) => j.id !== job.id);
    return list.map((j) => (j.id === job.id ? job : j));
  }
  if (!where.firstPage || !matches(job, where.filters)) return list as Job[];
  // Past the page's end as loaded, it is on a later page ("Older" continues after that id).
  if (where.boundary !== null && job.id < where.boundary) return list as Job[];
  const at = list.findIndex((j) => j.id < job.id);
  return at === -1 ? [...list, job] : [...list.slice(0, at), job, ...list.slice(at)];
}

/** Whether a job belongs in the list as filtered (what the server would have answered). */
function matches(job: Job, f: Filters): boolean {
  if (f.status !== '' && job.status !== f.status) return false;
  if (f.owner.trim() !== '' && job.owner !== f.owner.trim()) return false;
  const label = f.label.trim();
  if (label !== '') {
    const eq = label.indexOf('=');
    if (job.labels[label.slice(0, eq)] !== label.slice(eq + 1)) return false;
  }
  if (f.queue.trim() !== '' && job.queue !== f.queue.trim()) return false;
  const search = searchOf(f.text);
  if (search.idPrefix !== undefined) return job.id.startsWith(search.idPrefix);
  if (search.text !== undefined) {
    // The server's rule: in the name, or in the command and args joined by single spaces.
    const needle = asciiLower(search.text);
    return (
      asciiLower(job.name ?? '').includes(needle) ||
      asciiLower([job.command, ...job.args].join(' ')).includes(needle)
    );
  }
  return true;
}
