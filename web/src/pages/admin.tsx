import { useCallback, useEffect, useRef, useState } from 'preact/hooks';
import { getJson, query, sendJson } from '../api.ts';
import { time } from '../format.ts';
import type { AuditEntry, Token, User } from '../types.ts';
import { Confirm, ErrorLine, FilterInput, Pager } from '../ui.tsx';

/** Users and their tokens (admins only): add a user, issue and revoke tokens. */
export function UsersPage() {
  const [users, setUsers] = useState<User[]>([]);
  const [tokens, setTokens] = useState<Token[]>([]);
  const [error, setError] = useState<unknown>();
  const [issued, setIssued] = useState<string | null>(null);
  const [revoking, setRevoking] = useState<Token | null>(null);

  const load = useCallback(async () => {
    try {
      setUsers((await getJson<{ users: User[] }>('/v1/users')).users);
      setTokens((await getJson<{ tokens: Token[] }>('/v1/tokens')).tokens);
      setError(undefined);
    } catch (err) {
      setError(err);
    }
  }, []);
  useEffect(() => {
    void load();
  }, [load]);

  // What is being done: a second click meanwhile would add the user twice (the second a 409) or
  // issue a second token whose secret replaces the first's on the page, leaving one active token
  // nobody holds.
  const [busy, setBusy] = useState(false);
  // The guard itself: a click before the render that disables the button still sees it.
  const working = useRef(false);
  const start = () => {
    if (working.current) return false;
    working.current = true;
    setBusy(true);
    return true;
  };
  const done = () => {
    working.current = false;
    setBusy(false);
  };
  const addUser = async (e: Event) => {
    e.preventDefault();
    const target = e.target as HTMLFormElement;
    const form = new FormData(target);
    if (!start()) return;
    try {
      await sendJson('POST', '/v1/users', {
        name: String(form.get('name')),
        role: String(form.get('role')),
        // The name of a user removed whose jobs are in the history: the server refuses it unless asked.
        ...(form.get('reuseName') === 'on' ? { reuseName: true } : {}),
      });
      target.reset();
      await load();
    } catch (err) {
      setError(err);
    } finally {
      done();
    }
  };
  const issue = async (user: string) => {
    if (!start()) return;
    try {
      const answer = await sendJson<{ token: string }>('POST', '/v1/tokens', { user });
      setIssued(answer.token);
      await load();
    } catch (err) {
      setError(err);
    } finally {
      done();
    }
  };

  return (
    <section>
      <h1>Users and tokens</h1>
      <ErrorLine error={error} />
      {issued ? (
        <div class="notice" role="status">
          New token (shown once; copy it now): <code class="secret">{issued}</code>{' '}
          <button type="button" onClick={() => setIssued(null)}>
            Done
          </button>
        </div>
      ) : null}
      <form class="filters" onSubmit={(e) => void addUser(e)}>
        <label>
          Name
          <input name="name" required />
        </label>
        <label>
          Role
          <select name="role">
            <option value="user">user</option>
            <option value="viewer">viewer</option>
            <option value="admin">admin</option>
          </select>
        </label>
        <label
          class="check"
          title="A user removed whose jobs are still in the history: the new user owns them and their output"
        >
          <input type="checkbox" name="reuseName" /> Give it the jobs of a removed user of this name
        </label>
        <button type="submit" disabled={busy}>
          Add user
        </button>
      </form>
      <div class="table-wrap">
        <table>
          <thead>
            <tr>
              <th>User</th>
              <th>Role</th>
              <th>Runs as</th>
              <th>Created</th>
              <th />
            </tr>
          </thead>
          <tbody>
            {users.map((u) => (
              <tr key={u.name}>
                <td data-label="User">
                  {u.name}
                  {u.disabled ? ' (disabled)' : ''}
                </td>
                <td data-label="Role">{u.role}</td>
                <td data-label="Runs as">{u.runAs ?? ''}</td>
                <td data-label="Created">{time(u.createdAt)}</td>
                <td>
                  <button type="button" disabled={busy} onClick={() => void issue(u.name)}>
                    New token
                  </button>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      <h2>Tokens</h2>
      <div class="table-wrap">
        <table>
          <thead>
            <tr>
              <th>Id</th>
              <th>User</th>
              <th>Label</th>
              <th>Last used</th>
              <th>Expires</th>
              <th>State</th>
              <th />
            </tr>
          </thead>
          <tbody>
            {tokens.map((t) => (
              <tr key={t.id}>
                <td data-label="Id" class="mono">
                  {t.id}
                </td>
                <td data-label="User">{t.user}</td>
                <td data-label="Label">{t.label ?? ''}</td>
                <td data-label="Last used">{time(t.lastUsedAt)}</td>
                <td data-label="Expires">{t.expiresAt ? time(t.expiresAt) : 'never'}</td>
                <td data-label="State">{t.state}</td>
                <td>
                  {t.state === 'active' ? (
                    <button type="button" class="danger" onClick={() => setRevoking(t)}>
                      Revoke
                    </button>
                  ) : null}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      {revoking ? (
        <Confirm
          title={`Revoke token ${revoking.id} of ${revoking.user}?`}
          action="Revoke"
          danger
          onCancel={() => setRevoking(null)}
          onConfirm={() => {
            const t = revoking;
            setRevoking(null);
            void sendJson('DELETE', `/v1/tokens/${encodeURIComponent(t.id)}`).then(load, setError);
          }}
        >
          <p>Every client using it is refused from now on.</p>
        </Confirm>
      ) : null}
    </section>
  );
}

/** The audit trail (admins only), newest first, paged by cursor. */
export function AuditPage() {
  const [entries, setEntries] = useState<AuditEntry[]>([]);
  const [cursors, setCursors] = useState<string[]>([]);
  const [next, setNext] = useState<string | null>(null);
  const [user, setUser] = useState('');
  const [error, setError] = useState<unknown>();
  const cursor = cursors.at(-1);

  useEffect(() => {
    // Only the answer for the page and filter asked last is shown: two quick "Older" clicks
    // could otherwise show the first page's rows with the pager on the third.
    let stale = false;
    getJson<{ entries: AuditEntry[]; nextCursor: string | null }>(
      `/v1/audit${query({ user: user.trim(), cursor, limit: 100 })}`,
    ).then(
      (page) => {
        if (stale) return;
        setEntries(page.entries);
        setNext(page.nextCursor);
        setError(undefined);
      },
      (err) => !stale && setError(err),
    );
    return () => {
      stale = true;
    };
  }, [cursor, user]);

  return (
    <section>
      <h1>Audit</h1>
      <form class="filters" onSubmit={(e) => e.preventDefault()}>
        <label>
          User
          <FilterInput
            value={user}
            name="user"
            onApply={(value) => {
              setCursors([]);
              setUser(value);
            }}
          />
        </label>
      </form>
      <ErrorLine error={error} />
      <div class="table-wrap">
        <table>
          <thead>
            <tr>
              <th>At</th>
              <th>User</th>
              <th>From</th>
              <th>Action</th>
              <th>Target</th>
              <th>Result</th>
            </tr>
          </thead>
          <tbody>
            {entries.map((e) => (
              <tr key={e.id}>
                <td data-label="At">{time(e.at)}</td>
                <td data-label="User">
                  {e.user ?? ''} {e.role ? `(${e.role})` : ''}
                </td>
                <td data-label="From">
                  {e.source ?? ''} {e.transport ?? ''}
                </td>
                <td data-label="Action">{e.action}</td>
                <td data-label="Target" class="mono">
                  {e.target ?? ''}
                </td>
                <td data-label="Result" class={e.result === 'ok' ? '' : 'error'}>
                  {e.result}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      <Pager cursors={cursors} next={next} onChange={setCursors} />
    </section>
  );
}
