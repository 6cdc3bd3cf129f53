import { type FastifyReply, type FastifyRequest, LogController } from 'fastify';

/**
 * Fastify's per-request log lines, moved from `info` to `debug`: at `info` its two lines per
 * request cost a quarter of a `GET /v1/jobs/{id}` (docs/performance.md). One line per request,
 * with the request in it, at `debug`; a request whose response failed is still logged at `error`.
 * Errors the handlers throw are logged by the app's error handler, at every level.
 */
export class RequestLogController extends LogController {
  override incomingRequest(): void {}

  override requestCompleted(
    error: Error | null | undefined,
    request: FastifyRequest,
    reply: FastifyReply,
  ): void {
    if (error) {
      reply.log.error(
        { req: request, res: reply, err: error, responseTime: reply.elapsedTime },
        'request errored',
      );
    } else {
      reply.log.debug({ req: request, res: reply, responseTime: reply.elapsedTime }, 'request completed');
    }
  }
}
