import { createContextKey, type HandlerContext, type Interceptor } from '@connectrpc/connect';
import type { Authenticator, CertificateHolder } from '../../auth/authenticator.ts';
import type { Caller, CallOrigin } from '../../auth/principal.ts';
import type { Logger } from '../../core/logger.ts';
import { toConnectError } from './rpc-errors.ts';

/** What the HTTP layer knows of a call's connection, handed to Connect with the request. */
export interface RpcConnection {
  /** The peer's address, or `local` over the server's Unix socket. */
  readonly source: string;
  /** Who a verified client certificate names, if the connection presented one. */
  readonly certificateHolder: CertificateHolder | undefined;
  /**
   * Ends the call's response at once, mid-stream: for a stream ended for its caller
   * (`EndedForCaller`) while its client does not read, whose handler waits for room to write.
   */
  readonly cut: () => void;
}

/** An RPC's protocol, recorded as its transport in the audit trail. */
export type RpcProtocol = 'grpc' | 'grpc-web' | 'connect';

export const CONNECTION = createContextKey<RpcConnection | undefined>(undefined, {
  description: 'jobworker connection',
});
const CALLER = createContextKey<Caller | undefined>(undefined, { description: 'jobworker caller' });

/** The protocol of a request, by its content type (`application/grpc+proto`, `application/grpc-web`, ...). */
export function protocolOf(contentType: string | null): RpcProtocol {
  const type = (contentType ?? '').toLowerCase();
  if (type.startsWith('application/grpc-web')) return 'grpc-web';
  if (type.startsWith('application/grpc')) return 'grpc';
  return 'connect';
}

/**
 * Wraps every RPC, outermost first: errors of the call (its stream included) become statuses in
 * one place (`toConnectError`), then the caller is authenticated through the same Authenticator as
 * REST (rate limit, audit of failures): the `authorization` metadata (`Bearer <token>`), else the
 * verified client certificate's user. A token, when sent, wins.
 */
export function rpcInterceptor(authenticator: Authenticator, logger: Logger): Interceptor {
  return (next) => async (req) => {
    try {
      const connection = req.contextValues.get(CONNECTION);
      const origin: CallOrigin = {
        source: connection?.source ?? null,
        transport: protocolOf(req.header.get('content-type')),
      };
      const caller = authenticator.authenticateCall(
        req.header.get('authorization') ?? undefined,
        () => connection?.certificateHolder,
        origin,
      );
      req.contextValues.set(CALLER, caller);
      const res = await next(req);
      if (!res.stream) return res;
      return { ...res, message: mapStreamErrors(res.message, logger) };
    } catch (err) {
      throw toConnectError(err, logger);
    }
  };
}

async function* mapStreamErrors<T>(messages: AsyncIterable<T>, logger: Logger): AsyncGenerator<T> {
  try {
    yield* messages;
  } catch (err) {
    throw toConnectError(err, logger);
  }
}

/** The authenticated caller of an RPC. */
export function callerOf(ctx: HandlerContext): Caller {
  const caller = ctx.values.get(CALLER);
  if (!caller) throw new Error(`No caller for ${ctx.method.name}: the interceptor did not run`);
  return caller;
}
