import { useEffect, useRef, useState } from 'preact/hooks';
import { ApiError, getJson, onUnauthenticated, request, session } from './api.ts';
import { live } from './live.ts';
import { AuditPage, UsersPage } from './pages/admin.tsx';
import { JobPage } from './pages/job.tsx';
import { JobsPage } from './pages/jobs.tsx';
import { QueuesPage } from './pages/queues.tsx';
import { StartPage } from './pages/start.tsx';
import { go, useRoute } from './router.ts';
import { GKeys } from './shortcuts.ts';
import { ErrorLine, errorText } from './ui.tsx';

type Auth =
  | { state: 'checking' }
  | { state: 'signed-out'; error?: unknown }
  | { state: 'signed-in'; admin: boolean };

/** Keyboard shortcuts: two-key `g` moves, `/` search, `?` this help. */
const SHORTCUTS: [string, string][] = [
  ['g j', 'jobs'],
  ['g q', 'queues'],
  ['g s', 'start a job'],
  ['g u', 'users and tokens (admin)'],
  ['g a', 'audit (admin)'],
  ['/', 'search (the list, or the output)'],
  ['?', 'this help'],
  ['Esc', 'close a dialog'],
];

/**
 * Whether the tab is signed in: its token, else the browser's client certificate. Signed out, with
 * why: the server's refusal (`ApiError`), or an Error when it did not answer at all.
 */
async function check(): Promise<Auth> {
  try {
    await request('/v1/jobs?limit=1');
  } catch (err) {
    return {
      state: 'signed-out',
      error: err instanceof ApiError ? err : new Error('No answer from the server'),
    };
  }
  // Admin: the users list answers (403 for the others).
  const admin = await getJson('/v1/users').then(
    () => true,
    () => false,
  );
  return { state: 'signed-in', admin };
}

export function App() {
  const [auth, setAuth] = useState<Auth>({ state: 'checking' });
  const [help, setHelp] = useState(false);
  const [connected, setConnected] = useState(false);
  const route = useRoute();

  useEffect(() => {
    const had = session.token();
    void check().then((auth) => {
      if (auth.state !== 'signed-out') setAuth(auth);
      // A first visit without a token or a certificate: the sign-in page, no error to show.
      else if (had === null && auth.error instanceof ApiError) setAuth({ state: 'signed-out' });
      // The server away: the tab's token is kept for when it is back (request() forgets only a refused one).
      else if (had !== null && !(auth.error instanceof ApiError))
        setAuth({
          state: 'signed-out',
          error: new Error(
            `${errorText(auth.error)}: this tab keeps its token; sign in again when it is back`,
          ),
        });
      else setAuth(auth);
    });
    return onUnauthenticated(() => {
      live.stop();
      setAuth({ state: 'signed-out', error: new Error('Signed out: the token expired or was revoked') });
    });
  }, []);

  useEffect(() => {
    if (auth.state !== 'signed-in') return;
    live.start();
    setConnected(live.connected);
    return live.subscribe((e) => {
      if (e.type === 'connected') setConnected(true);
      if (e.type === 'disconnected') setConnected(false);
    });
  }, [auth.state]);

  useEffect(() => {
    const pairs = new GKeys();
    const onKey = (e: KeyboardEvent) => {
      const target = e.target as HTMLElement;
      if (e.ctrlKey || e.metaKey || e.altKey) return;
      if (['INPUT', 'TEXTAREA', 'SELECT'].includes(target.tagName) || target.closest('.xterm')) {
        pairs.typed();
        if (e.key === 'Escape') target.blur();
        return;
      }
      const pressed = pairs.key(e.key, e.timeStamp);
      if ('page' in pressed) {
        e.preventDefault();
        go(pressed.page);
      } else if ('key' in pressed) {
        if (pressed.key === '?') setHelp((h) => !h);
        else if (pressed.key === 'Escape') setHelp(false);
        else if (pressed.key === '/') {
          e.preventDefault();
          dispatchEvent(new Event('jobworker:search'));
        }
      }
    };
    addEventListener('keydown', onKey);
    return () => removeEventListener('keydown', onKey);
  }, []);

  if (auth.state === 'checking') return <p class="muted center">Loading…</p>;
  if (auth.state === 'signed-out') return <SignIn error={auth.error} onSignedIn={setAuth} />;

  const [page, id] = route;
  const signOut = () => {
    session.signOut();
    live.stop();
    setAuth({ state: 'signed-out' });
  };
  const nav: [string, string, boolean][] = [
    ['jobs', 'Jobs', true],
    ['start', 'Start', true],
    ['queues', 'Queues', true],
    ['users', 'Users', auth.admin],
    ['audit', 'Audit', auth.admin],
  ];
  return (
    <div class="layout">
      <header class="top">
        <a class="brand" href="#/jobs">
          jobworker
        </a>
        <nav>
          {nav
            .filter(([, , show]) => show)
            .map(([to, label]) => (
              <a href={`#/${to}`} class={page === to ? 'active' : ''}>
                {label}
              </a>
            ))}
        </nav>
        <span
          class={`live-dot ${connected ? 'on' : 'off'}`}
          title={connected ? 'Live' : 'Reconnecting'}
          data-testid="live"
        >
          {connected ? 'live' : 'offline'}
        </span>
        <button type="button" class="link" onClick={() => setHelp(true)} title="Keyboard shortcuts (?)">
          ?
        </button>
        <button type="button" class="link" onClick={signOut}>
          Sign out
        </button>
      </header>
      <main>
        {page === 'jobs' && id ? (
          <JobPage id={id} key={id} />
        ) : page === 'start' ? (
          <StartPage />
        ) : page === 'queues' ? (
          <QueuesPage />
        ) : page === 'users' && auth.admin ? (
          <UsersPage />
        ) : page === 'audit' && auth.admin ? (
          <AuditPage />
        ) : (
          <JobsPage />
        )}
      </main>
      {help ? (
        <div class="modal-backdrop">
          <div class="modal" role="dialog" aria-label="Keyboard shortcuts">
            <h2>Keyboard shortcuts</h2>
            <table class="shortcuts">
              <tbody>
                {SHORTCUTS.map(([keys, what]) => (
                  <tr>
                    <td>
                      <kbd>{keys}</kbd>
                    </td>
                    <td>{what}</td>
                  </tr>
                ))}
              </tbody>
            </table>
            <div class="modal-actions">
              <button type="button" onClick={() => setHelp(false)}>
                Close
              </button>
            </div>
          </div>
        </div>
      ) : null}
    </div>
  );
}

function SignIn({ error, onSignedIn }: { error?: unknown; onSignedIn: (auth: Auth) => void }) {
  const [problem, setProblem] = useState<unknown>(error);
  // A second submit while one is on its way would read the first's token as the one to keep. A
  // ref, read at once: state set by the first submit is not seen by a second in the same frame.
  const signingIn = useRef(false);
  const [busy, setBusy] = useState(false);
  const submit = async (e: Event) => {
    e.preventDefault();
    if (signingIn.current) return;
    signingIn.current = true;
    setBusy(true);
    try {
      await signIn(e);
    } finally {
      signingIn.current = false;
      setBusy(false);
    }
  };
  const signIn = async (e: Event) => {
    const token = String(new FormData(e.target as HTMLFormElement).get('token') ?? '').trim();
    // The token this tab kept: one the server has not refused (a 401 forgets it), here because the
    // server could not be reached to check it when the page loaded.
    const kept = session.token();
    if (token !== '') session.signIn(token);
    // An empty field tries the kept token first; once that is refused (or with none), the
    // browser's client certificate, if it presented one, is the credential.
    let auth = await check();
    let keptRefused = false;
    if (auth.state !== 'signed-in' && token === '' && kept !== null && session.token() === null) {
      keptRefused = true;
      auth = await check();
    }
    if (auth.state === 'signed-in') {
      onSignedIn(auth);
      return;
    }
    // A failed sign-in leaves the tab's token as it was, unless the server refused that very token:
    // tried while the server is away, it loses nothing.
    if (kept !== null && !keptRefused) session.signIn(kept);
    else session.signOut();
    const failure = auth.state === 'signed-out' ? auth.error : undefined;
    setProblem(signInProblem(failure, token !== '', kept !== null && !keptRefused, keptRefused));
  };
  return (
    <main class="signin">
      <form onSubmit={(e) => void submit(e)} autocomplete="off">
        <h1>jobworker</h1>
        <label>
          Token
          <input name="token" type="password" placeholder="jw_…" autocomplete="off" />
        </label>
        <p class="muted">
          Kept for this tab only (sessionStorage) and sent as the Authorization header. Leave it empty to sign
          in again with the token this tab kept, or with the client certificate your browser presents.
        </p>
        <ErrorLine error={problem} />
        <button type="submit" class="primary" aria-disabled={busy}>
          Sign in
        </button>
      </form>
    </main>
  );
}

/**
 * What a failed sign-in says. `typed`: a token was pasted; `kept`: the tab still keeps one the
 * server never judged; `keptRefused`: the kept token was tried first and refused.
 */
function signInProblem(failure: unknown, typed: boolean, kept: boolean, keptRefused: boolean): Error {
  if (failure instanceof ApiError) {
    if (typed) return failure;
    return new Error(
      keptRefused
        ? 'The token this tab kept was refused, and no client certificate was accepted: paste a token'
        : 'No client certificate was accepted: paste a token',
    );
  }
  // No answer at all: the server is away, or (no token sent) the TLS handshake refused the
  // browser's certificate; the browser tells the page nothing more.
  if (typed || kept) return new Error(`${errorText(failure)}: try again when it is back`);
  return new Error(`${errorText(failure)}, or the browser's client certificate was refused: paste a token`);
}
