import type { ApiAuditEntry, ApiToken, ApiUser } from '../client/api-types.ts';
import { renderTable } from './table.ts';
import { printable } from './terminal-sanitizer.ts';

const when = (iso: string | null, none = '-') => (iso === null ? none : iso.replace(/\.\d{3}Z$/, 'Z'));
const fit = (maxWidth: number | undefined) => (maxWidth === undefined ? {} : { maxWidth });

/** `user list`: NAME ROLE RUN-AS STATE CREATED. */
export function userTable(users: readonly ApiUser[], maxWidth?: number): string {
  return renderTable(
    [
      { header: 'NAME', shrink: true },
      { header: 'ROLE' },
      { header: 'RUN-AS' },
      { header: 'STATE' },
      { header: 'CREATED', optional: true },
    ],
    users.map((u) => [
      printable(u.name),
      u.role,
      u.runAs === null ? '-' : printable(u.runAs),
      u.disabled ? 'disabled' : 'enabled',
      when(u.createdAt),
    ]),
    fit(maxWidth),
  );
}

/** `token list`: ID USER LABEL CREATED LAST-USED EXPIRES STATE; never the secret, which is not kept. */
export function tokenTable(tokens: readonly ApiToken[], maxWidth?: number): string {
  return renderTable(
    [
      { header: 'ID' },
      { header: 'USER', shrink: true },
      { header: 'LABEL', shrink: true },
      { header: 'CREATED', optional: true },
      { header: 'LAST-USED', optional: true },
      { header: 'EXPIRES' },
      { header: 'STATE' },
    ],
    tokens.map((t) => [
      t.id,
      printable(t.user),
      t.label === null ? '-' : printable(t.label),
      when(t.createdAt),
      when(t.lastUsedAt, 'never'),
      when(t.expiresAt, 'never'),
      t.state,
    ]),
    fit(maxWidth),
  );
}

/** `audit`: TIME USER ACTION TARGET RESULT SOURCE. */
export function auditTable(entries: readonly ApiAuditEntry[], maxWidth?: number): string {
  return renderTable(
    [
      { header: 'TIME' },
      { header: 'USER', shrink: true },
      { header: 'ACTION' },
      { header: 'TARGET', shrink: true },
      { header: 'RESULT' },
      { header: 'SOURCE', optional: true },
    ],
    entries.map((e) => [
      when(e.at),
      e.user === null ? '-' : printable(e.user),
      e.action,
      e.target === null ? '-' : printable(e.target),
      e.result,
      `${e.source === null ? '-' : printable(e.source)}${e.transport === null ? '' : ` (${e.transport})`}`,
    ]),
    fit(maxWidth),
  );
}
