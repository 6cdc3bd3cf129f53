import type { SecureServerOptions } from 'node:http2';
import Fastify, { type FastifyBaseLogger, type FastifyError, type FastifyInstance } from 'fastify';
import type { Authenticator } from '../../auth/authenticator.ts';
import { redactTokens } from '../../auth/token.ts';
import type { NodeCredentials } from '../../cluster/node-credentials.ts';
import type { ServerMetrics } from '../../metrics/server-metrics.ts';
import type { CertificateService } from '../../service/certificate-service.ts';
import type { JobService } from '../../service/job-service.ts';
import type { NodeService } from '../../service/node-service.ts';
import { TaskService } from '../../service/task-service.ts';
import type { UserService } from '../../service/user-service.ts';
import type { WebhookService } from '../../service/webhook-service.ts';
import { rpcPlugin } from '../rpc/rpc-plugin.ts';
import { type MetricsTokenCheck, type PublicRouteConfig, registerAuthentication } from './authentication.ts';
import { registerCertRoutes } from './cert-routes.ts';
import { registerJobWorkerRoutes } from './compat/job-worker-routes.ts';
import { registerTaskManagerRoutes } from './compat/task-manager-routes.ts';
import { registerWorkerctlRoutes } from './compat/workerctl-routes.ts';
import { registerDashboard } from './dashboard-routes.ts';
import { toErrorResponse } from './error-mapping.ts';
import { registerEventRoutes } from './event-routes.ts';
import { answerExpectContinue } from './expect-continue.ts';
import { registerJobRoutes } from './job-routes.ts';
import { parseJsonBody } from './json-body.ts';
import { lazySerializers } from './lazy-serializers.ts';
import { lazyValidators, REST_AJV_OPTIONS } from './lazy-validators.ts';
import { MethodNotAllowedError, RouteMethods } from './method-not-allowed.ts';
import { registerMetricsRoutes } from './metrics-routes.ts';
import { registerNodeRoutes } from './node-routes.ts';
import { buildOpenApi, type DocumentedRoute, type RouteSchema } from './openapi.ts';
import { registerOutputRoutes } from './output-routes.ts';
import { registerQueryCoercion } from './query-coercion.ts';
import { registerQueueRoutes } from './queue-routes.ts';
import { RequestLogController } from './request-log-controller.ts';
import { lazyChildLogger } from './request-logger.ts';
import { ACCOUNT_SCHEMAS, HEALTH_SCHEMA, OPENAPI_SCHEMA, SHARED_SCHEMAS } from './schemas.ts';
import type { SendFileAddon } from './send-file.ts';
import { registerTaskRoutes } from './task-routes.ts';
import { registerUserRoutes } from './user-routes.ts';
import { registerWebhookRoutes } from './webhook-routes.ts';

export interface RestAppOptions {
  readonly service: JobService;
  /** Users, tokens and the audit trail. */
  readonly users: UserService;
  readonly authenticator: Authenticator;
  readonly logger: FastifyBaseLogger;
  /** The version shown in the OpenAPI document. */
  readonly version: string;
  /**
   * TLS options: the app then serves HTTPS with HTTP/2 (ALPN `h2`) and HTTP/1.1 on the same port.
   * Without them, plain HTTP/1.1.
   */
  readonly https?: SecureServerOptions;
  /** Client certificates for `/v1/certs`. */
  readonly certificates: CertificateService;
  /** `POST /run`, the take-home starter's route (docs/compat.md). */
  readonly run?: RunRouteOptions;
  /**
   * The send-file addon (`loadSendFile`): a finished job's output read over a plain socket goes
   * from its files to the client inside the kernel. Absent: through the server's pooled pages.
   */
  readonly sendFile?: SendFileAddon;
  /** Named tasks (docs/tasks.md); absent, none is defined. */
  readonly tasks?: TaskService;
  /** Server-wide webhooks and deliveries (`/v1/webhooks`); absent: no such routes. */
  readonly webhooks?: WebhookService;
  /** `GET /metrics` and the request histogram; absent: no such route. */
  readonly metrics?: ServerMetrics;
  /** The dedicated metrics token, accepted on `GET /metrics` only. */
  readonly metricsToken?: MetricsTokenCheck;
  /** The built dashboard served at `/` (docs/dashboard.md); absent: none. */
  readonly webRoot?: string;
  /**
   * Checks requests other nodes of a cluster forward here (docs/cluster.md, "Forwarding between
   * nodes"); absent: a forwarded request is refused (401).
   */
  readonly nodes?: NodeCredentials;
  /** `GET /v1/nodes`: the nodes of the cluster (this server alone on SQLite); absent: no such route. */
  readonly nodeList?: NodeService;
}

/** How `POST /run` treats the starter's requests. */
export interface RunRouteOptions {
  /** The working directory of a `/run` job that names none (`serve --run-cwd`); absent: the owner's home. */
  readonly cwd?: string;
  /**
   * Answer `/run` without credentials from loopback, as `TOKENLESS_PRINCIPAL`, a principal of its
   * own (`serve --run-without-token`, for local use only; every other route still needs credentials).
   */
  readonly withoutToken?: boolean;
}

/** Largest request body accepted: 1 MiB. Larger is 413 PAYLOAD_TOO_LARGE. */
export const BODY_LIMIT = 1024 * 1024;

/**
 * The REST API v1 as a Fastify instance, not yet listening (tests may `inject()` into it).
 * Authentication runs first on every route but `GET /healthz`; every error, Fastify's own
 * included, goes through `toErrorResponse`, the one place codes become statuses.
 */
export async function buildRestApp(options: RestAppOptions): Promise<FastifyInstance> {
  const transport = options.https
    ? { http2: true as const, https: { ...options.https, allowHTTP1: true } }
    : {};
  // Typed as the HTTP/1.1 instance every route module takes: their handlers use only what both share.
  const app = Fastify({
    ...(transport as object),
    loggerInstance: options.logger,
    bodyLimit: BODY_LIMIT,
    // Every GET route answers HEAD (same status and headers, no body): uptime monitors and load
    // balancers probe with it. The output route handles its HEAD itself (it streams).
    exposeHeadRoutes: true,
    // While closing, requests already on open connections are still answered (with
    // `Connection: close`), not given Fastify's own 503 body, which is not in our error format.
    return503OnClosing: false,
    logController: new RequestLogController(),
    // The request's child logger is made when the request first logs (most never do).
    childLoggerFactory: lazyChildLogger,
    schemaController: {
      compilersFactory: { buildSerializer: lazySerializers(), buildValidator: lazyValidators() },
    },
    routerOptions: { maxParamLength: 1000 },
    ajv: {
      customOptions: REST_AJV_OPTIONS,
    },
  }) as unknown as FastifyInstance;
  answerExpectContinue(app.server, BODY_LIMIT);
  const shared = [...SHARED_SCHEMAS, ...ACCOUNT_SCHEMAS];
  for (const schema of shared) app.addSchema(schema);
  // JSON only: a text/plain body is refused (400 on `Content-Type`) instead of reaching a handler.
  app.removeContentTypeParser('text/plain');
  // Our own JSON parser, so that a refused body says why (Fastify's says "not valid JSON" for all).
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'buffer' }, (_request, body, done) => {
    try {
      done(null, parseJsonBody(body as Buffer));
    } catch (err) {
      done(err as Error, undefined);
    }
  });

  const documented: DocumentedRoute[] = [];
  const routeMethods = new RouteMethods();
  app.addHook('onRoute', (route) => {
    const config = (route.config ?? {}) as PublicRouteConfig & {
      openapi?: Record<string, unknown>;
      rpc?: true;
    };
    // The RPC methods are described by proto/jobworker/v1, not by the OpenAPI document; the
    // dashboard's files (hidden: `schema.hide`) are a web page, not the API.
    if (config.rpc || (route.schema as { hide?: boolean } | undefined)?.hide === true) return;
    const methods = Array.isArray(route.method) ? route.method : [route.method];
    for (const method of methods) {
      routeMethods.add(method, route.url);
      // HEAD is every GET's, by HTTP's rules: not an operation of its own in the document.
      if (method === 'HEAD') continue;
      documented.push({
        method,
        url: route.url,
        schema: (route.schema ?? {}) as RouteSchema,
        isPublic: config.public === true,
        ...(config.openapi ? { extraResponses: config.openapi } : {}),
      });
    }
  });

  app.setErrorHandler((error: FastifyError, request, reply) => {
    const { status, body, unexpected, headers } = toErrorResponse(error, request);
    if (unexpected) request.log.error({ err: error }, 'request failed');
    // With the request, since requests themselves are logged only at debug (its URL is redacted).
    else
      request.log.info({ req: request, code: body.error.code, field: body.error.field }, body.error.message);
    return reply.code(status).headers(headers).send(body);
  });
  app.setNotFoundHandler((request, reply) => {
    const path = request.url.split('?')[0] ?? '';
    const allowed = routeMethods.allowed(path);
    if (allowed.length > 0) throw new MethodNotAllowedError(request.method, redactTokens(path), allowed);
    const message = redactTokens(`No route ${request.method} ${path}`);
    return reply.code(404).send({ error: { code: 'NOT_FOUND', message } });
  });

  registerAuthentication(
    app,
    options.authenticator,
    options.run?.withoutToken === true,
    options.metricsToken,
    options.nodes,
  );
  registerQueryCoercion(app);
  // First, so that its request hook sees every route registered after it, RPC included.
  if (options.metrics) registerMetricsRoutes(app, options.metrics);
  app.get('/healthz', { schema: HEALTH_SCHEMA, config: { public: true } }, async () => ({ status: 'ok' }));
  registerJobRoutes(app, options.service);
  registerOutputRoutes(app, options.service, {
    ...(options.run?.cwd !== undefined ? { runCwd: options.run.cwd } : {}),
    ...(options.sendFile ? { sendFile: options.sendFile } : {}),
  });
  registerQueueRoutes(app, options.service);
  if (options.nodeList) registerNodeRoutes(app, options.nodeList);
  registerEventRoutes(app, options.service);
  registerUserRoutes(app, options.users);
  registerCertRoutes(app, options.certificates);
  const tasks =
    options.tasks ??
    (await TaskService.open(options.service, {
      setQueue: () => Promise.reject(new Error('no tasks file, no queue settings')),
    }));
  registerTaskRoutes(app, tasks);
  if (options.webhooks) registerWebhookRoutes(app, options.webhooks);
  registerJobWorkerRoutes(app, options.service);
  registerTaskManagerRoutes(app, tasks);
  registerWorkerctlRoutes(app, options.service, options.authenticator);
  // gRPC, gRPC-Web and Connect on the same port (src/api/rpc), over the same services.
  if (options.webRoot !== undefined) await registerDashboard(app, options.webRoot);
  await app.register(rpcPlugin, {
    authenticator: options.authenticator,
    readMaxBytes: BODY_LIMIT,
    services: {
      jobs: options.service,
      users: options.users,
      certificates: options.certificates,
      ...(options.webhooks ? { webhooks: options.webhooks } : {}),
    },
  });
  let openapi: object | undefined;
  const openapiResponse = {
    200: {
      description: 'This document',
      content: { 'application/json': { schema: { type: 'object' } } },
    },
  };
  app.get('/v1/openapi.json', { schema: OPENAPI_SCHEMA, config: { openapi: openapiResponse } }, async () => {
    openapi ??= buildOpenApi(documented, shared, options.version);
    return openapi;
  });
  await app.ready();
  return app;
}
