import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Authenticator } from '../../auth/authenticator.ts';
import { loadOnce } from '../../core/load-once.ts';
import { RPC_CONTENT_TYPE_PATTERNS, RPC_CONTENT_TYPES } from './rpc-content-types.ts';
import { rpcPaths } from './rpc-paths.ts';
import type { RpcServices } from './rpc-services.ts';

/** Route config of the RPC routes: they authenticate themselves and are not in the OpenAPI document. */
export interface RpcRouteConfig {
  readonly public: true;
  readonly rpc: true;
}

export interface RpcPluginOptions {
  readonly authenticator: Authenticator;
  /** The services the methods call: the same instances REST calls. */
  readonly services: RpcServices;
  /** Largest request message accepted, as for REST bodies. */
  readonly readMaxBytes: number;
}

/**
 * Serves the Connect services on the REST app's own server and port: gRPC over HTTP/2 (with TLS),
 * gRPC-Web and Connect over HTTP/2 and HTTP/1.1, one POST route per method under
 * `/jobworker.v1.<Service>/<Method>`. Like `@connectrpc/connect-fastify`'s plugin, but its routes
 * skip the REST authentication hook (the interceptor authenticates, answering in the protocol's
 * own error format), stay out of the OpenAPI document, and its failures go to the server log.
 * Register it with `app.register` so its content-type parsers stay inside it.
 *
 * The routes are registered at start from the list of methods (rpc-paths.ts); Connect itself, the
 * router and the services' descriptors are loaded by the first call (rpc-handlers.ts).
 */
export function rpcPlugin(
  app: FastifyInstance,
  options: RpcPluginOptions,
  done: (err?: Error) => void,
): void {
  // Tried again by the next call when it fails, instead of failing every call for good.
  const handlers = loadOnce(() =>
    import('./rpc-handlers.ts').then(({ buildRpcHandlers }) =>
      buildRpcHandlers({
        authenticator: options.authenticator,
        services: options.services,
        readMaxBytes: options.readMaxBytes,
        log: app.log,
      }),
    ),
  );
  const noop = (_request: FastifyRequest, _payload: unknown, parsed: (err: null, body: undefined) => void) =>
    parsed(null, undefined);
  // Connect reads the bodies itself; inside this plugin only, REST's JSON parser steps aside.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser([...RPC_CONTENT_TYPES], noop);
  for (const type of RPC_CONTENT_TYPE_PATTERNS) app.addContentTypeParser(type, noop);
  const config: RpcRouteConfig = { public: true, rpc: true };
  for (const path of rpcPaths({ webhooks: options.services.webhooks !== undefined })) {
    app.post(path, { config }, async (request, reply) => {
      const handle = (await handlers()).get(path);
      if (handle === undefined)
        throw new Error(`No RPC handler for ${path}: src/api/rpc/rpc-paths.ts is out of date`);
      await handle(request, reply);
    });
  }
  done();
}
