import type { ConnectRouter } from '@connectrpc/connect';
import { createConnectRouter, createContextValues } from '@connectrpc/connect';
import * as connectProtocol from '@connectrpc/connect/protocol-connect';
import * as grpcProtocol from '@connectrpc/connect/protocol-grpc';
import * as grpcWebProtocol from '@connectrpc/connect/protocol-grpc-web';
import {
  compressionGzip,
  universalRequestFromNodeRequest,
  universalResponseToNodeResponse,
} from '@connectrpc/connect-node';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Authenticator } from '../../auth/authenticator.ts';
import { certificateUserOf } from '../rest/client-certificate.ts';
import { CONNECTION, rpcInterceptor } from './rpc-authentication.ts';

/** Route config of the RPC routes: they authenticate themselves and are not in the OpenAPI document. */
export interface RpcRouteConfig {
  readonly public: true;
  readonly rpc: true;
}

export interface RpcPluginOptions {
  readonly authenticator: Authenticator;
  /** Registers the services (see `registerRpcServices`). */
  readonly routes: (router: ConnectRouter) => void;
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
 */
export function rpcPlugin(
  app: FastifyInstance,
  options: RpcPluginOptions,
  done: (err?: Error) => void,
): void {
  const router = createConnectRouter({
    interceptors: [rpcInterceptor(options.authenticator, app.log)],
    readMaxBytes: options.readMaxBytes,
    acceptCompression: [compressionGzip],
  });
  options.routes(router);
  const noop = (_request: FastifyRequest, _payload: unknown, parsed: (err: null, body: undefined) => void) =>
    parsed(null, undefined);
  // Connect reads the bodies itself; inside this plugin only, REST's JSON parser steps aside.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser(
    [
      connectProtocol.contentTypeUnaryJson,
      connectProtocol.contentTypeStreamJson,
      grpcWebProtocol.contentTypeProto,
      grpcWebProtocol.contentTypeJson,
      grpcProtocol.contentTypeProto,
      grpcProtocol.contentTypeJson,
    ],
    noop,
  );
  for (const type of [
    grpcProtocol.contentTypeRegExp,
    grpcWebProtocol.contentTypeRegExp,
    connectProtocol.contentTypeRegExp,
  ]) {
    app.addContentTypeParser(type, noop);
  }
  const config: RpcRouteConfig = { public: true, rpc: true };
  for (const handler of router.handlers) {
    app.post(handler.requestPath, { config }, async (request, reply) => {
      reply.hijack();
      const values = createContextValues().set(CONNECTION, {
        source: request.raw.socket?.remoteAddress === undefined ? 'local' : request.ip,
        certificateUser: certificateUserOf(request),
      });
      try {
        const response = await handler(
          universalRequestFromNodeRequest(request.raw, reply.raw, undefined, values),
        );
        await universalResponseToNodeResponse(response, reply.raw);
      } catch (err) {
        // The client went away mid-stream, or the connection broke: nothing left to answer.
        request.log.debug({ err, rpc: handler.requestPath }, 'rpc response cut short');
        reply.raw.destroy();
      }
    });
  }
  done();
}
