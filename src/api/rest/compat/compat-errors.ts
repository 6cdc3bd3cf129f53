import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import { toErrorResponse } from '../error-mapping.ts';

/** Names the error code of docs/errors.md on answers whose body has no room for it. */
export const ERROR_CODE_HEADER = 'X-Jobworker-Error-Code';

/**
 * A route error handler that answers in an original design's own error shape: the status and
 * message come from `toErrorResponse` (the one mapping of codes to statuses), the body from
 * `render`, and the code from the `X-Jobworker-Error-Code` header. Authentication failures of the
 * hook come here too, since Fastify hands a hook's error to its route's handler.
 */
export function designErrorHandler(render: (message: string) => object) {
  return (error: FastifyError, request: FastifyRequest, reply: FastifyReply) => {
    const { status, body, unexpected, headers } = toErrorResponse(error, request);
    if (unexpected) request.log.error({ err: error }, 'request failed');
    else
      request.log.info({ req: request, code: body.error.code, field: body.error.field }, body.error.message);
    return reply
      .code(status)
      .headers({ ...headers, [ERROR_CODE_HEADER]: body.error.code })
      .send(render(body.error.message));
  };
}
