import type { FastifyInstance } from 'fastify';
import type { TokenView, UserService } from '../../service/user-service.ts';
import type { AuditRecord, UserRecord } from '../../store/user-store.ts';
import { principalOf } from './authentication.ts';
import {
  CREATE_TOKEN_SCHEMA,
  CREATE_USER_SCHEMA,
  DELETE_USER_SCHEMA,
  LIST_AUDIT_SCHEMA,
  LIST_TOKENS_SCHEMA,
  LIST_USERS_SCHEMA,
  PATCH_USER_SCHEMA,
  REVOKE_TOKEN_SCHEMA,
} from './schemas.ts';

/** Users, tokens and the audit trail (docs/security.md): admins only, checked by the service. */
export function registerUserRoutes(app: FastifyInstance, users: UserService): void {
  app.get('/v1/users', { schema: LIST_USERS_SCHEMA }, async (request) => ({
    users: users.listUsers(principalOf(request)).map(userToJson),
  }));

  app.post('/v1/users', { schema: CREATE_USER_SCHEMA }, async (request, reply) => {
    const user = await users.addUser(principalOf(request), request.body);
    return reply.code(201).send(userToJson(user));
  });

  app.patch('/v1/users/:name', { schema: PATCH_USER_SCHEMA }, async (request) => {
    const { name } = request.params as { name: string };
    return userToJson(await users.setUser(principalOf(request), name, request.body ?? {}));
  });

  app.delete('/v1/users/:name', { schema: DELETE_USER_SCHEMA }, async (request) => {
    const { name } = request.params as { name: string };
    return userToJson(await users.removeUser(principalOf(request), name));
  });

  app.get('/v1/tokens', { schema: LIST_TOKENS_SCHEMA }, async (request) => {
    const { user } = request.query as { user?: string };
    return { tokens: (await users.listTokens(principalOf(request), user)).map(tokenToJson) };
  });

  app.post('/v1/tokens', { schema: CREATE_TOKEN_SCHEMA }, async (request, reply) => {
    const { token, record } = await users.createToken(principalOf(request), request.body);
    // Never cached by anything between: this answer is the token's only copy.
    return reply
      .code(201)
      .header('Cache-Control', 'no-store')
      .send({ token, ...tokenToJson(record) });
  });

  app.delete('/v1/tokens/:id', { schema: REVOKE_TOKEN_SCHEMA }, async (request) => {
    const { id } = request.params as { id: string };
    return tokenToJson(await users.revokeToken(principalOf(request), id));
  });

  app.get('/v1/audit', { schema: LIST_AUDIT_SCHEMA }, async (request) => {
    const { limit, ...query } = request.query as { limit?: number } & Record<string, string | undefined>;
    const page = await users.listAudit(principalOf(request), {
      ...(query.user === undefined ? {} : { user: query.user }),
      ...(query.action === undefined ? {} : { action: query.action }),
      ...(query.since === undefined ? {} : { since: query.since }),
      ...(query.until === undefined ? {} : { until: query.until }),
      ...(limit === undefined ? {} : { limit }),
      ...(query.cursor === undefined ? {} : { cursor: query.cursor }),
    });
    return { entries: page.entries.map(auditToJson), nextCursor: page.nextCursor };
  });
}

function userToJson(user: UserRecord) {
  return {
    name: user.name,
    role: user.role,
    runAs: user.runAs,
    disabled: user.disabled,
    createdAt: user.createdAt.toISOString(),
    defaultLimits: user.limits?.defaults ?? {},
    maxLimits: user.limits?.maxima ?? {},
    isolation: user.isolation ?? null,
  };
}

function tokenToJson(token: TokenView) {
  const iso = (at: Date | null) => at?.toISOString() ?? null;
  return {
    id: token.id,
    user: token.user,
    label: token.label,
    createdAt: token.createdAt.toISOString(),
    lastUsedAt: iso(token.lastUsedAt),
    expiresAt: iso(token.expiresAt),
    revokedAt: iso(token.revokedAt),
    state: token.state,
  };
}

function auditToJson(entry: AuditRecord) {
  return { ...entry, at: entry.at.toISOString() };
}
