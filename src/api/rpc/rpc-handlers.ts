import { createConnectRouter, createContextValues } from '@connectrpc/connect';
import {
  compressionGzip,
  universalRequestFromNodeRequest,
  universalResponseToNodeResponse,
} from '@connectrpc/connect-node';
import type { FastifyBaseLogger, FastifyReply, FastifyRequest } from 'fastify';
import type { Authenticator } from '../../auth/authenticator.ts';
import { certificateHolderOf } from '../rest/client-certificate.ts';
import { CONNECTION, rpcInterceptor } from './rpc-authentication.ts';
import { type RpcServices, registerRpcServices } from './rpc-services.ts';

/** Answers one RPC on the Fastify request's own connection (HTTP/1.1 or HTTP/2). */
export type RpcHandle = (request: FastifyRequest, reply: FastifyReply) => Promise<void>;

export interface RpcHandlerOptions {
  readonly authenticator: Authenticator;
  readonly services: RpcServices;
  /** Largest request message accepted, as for REST bodies. */
  readonly readMaxBytes: number;
  readonly log: FastifyBaseLogger;
}

/**
 * The Connect router of every jobworker.v1 service, as one handler per method path. Loaded at the
 * first RPC (src/api/rpc/rpc-plugin.ts): Connect, protobuf and the services' descriptors cost an
 * idle server ~4.5 MB it does not need until then.
 */
export function buildRpcHandlers(options: RpcHandlerOptions): Map<string, RpcHandle> {
  const router = createConnectRouter({
    interceptors: [rpcInterceptor(options.authenticator, options.log)],
    readMaxBytes: options.readMaxBytes,
    acceptCompression: [compressionGzip],
  });
  registerRpcServices(router, options.services);
  const handlers = new Map<string, RpcHandle>();
  for (const handler of router.handlers) {
    handlers.set(handler.requestPath, async (request, reply) => {
      reply.hijack();
      const values = createContextValues().set(CONNECTION, {
        source: request.raw.socket?.remoteAddress === undefined ? 'local' : request.ip,
        certificateHolder: certificateHolderOf(request),
        cut: () => reply.raw.destroy(),
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
  return handlers;
}
