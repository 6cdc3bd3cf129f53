import type { FastifyInstance } from 'fastify';
import type { Authenticator } from '../../../auth/authenticator.ts';
import { WORKERCTL_STATUS, WORKERCTL_TIMEOUT_MS } from '../../../core/design-statuses.ts';
import { ValidationError } from '../../../core/errors.ts';
import { isJobId } from '../../../core/ids.ts';
import type { JobService } from '../../../service/job-service.ts';
import { authenticateWithBody } from '../authentication.ts';
import { designErrorHandler } from './compat-errors.ts';
import { WORKERCTL_ACTION_SCHEMA } from './compat-schemas.ts';
import { jobOutputText } from './job-output-text.ts';

interface ActionBody {
  action: 'start' | 'stop' | 'status';
  token?: string;
  command?: string;
  jobID?: string;
}

/**
 * The workerctl design's action API (docs/compat.md): `POST /api` and `POST /` with
 * `{"action": "start" | "stop" | "status", "token": ..., "command" | "jobID": ...}`, answering
 * `{"jobID": ..., "status": ...}` (with `output` for `status`) or `{"error": "..."}`.
 */
export function registerWorkerctlRoutes(
  app: FastifyInstance,
  service: JobService,
  authenticator: Authenticator,
): void {
  for (const url of ['/api', '/']) {
    app.post(
      url,
      {
        schema: {
          ...WORKERCTL_ACTION_SCHEMA,
          operationId: url === '/api' ? 'workerctlAction' : 'workerctlActionAtRoot',
        },
        config: { tokenInBody: true },
        errorHandler: designErrorHandler((error) => ({ error })),
      },
      async (request) => {
        const body = request.body as ActionBody;
        const who = authenticateWithBody(request, authenticator, body.token);
        switch (body.action) {
          case 'start': {
            if (typeof body.command !== 'string' || body.command.trim() === '') {
              throw ValidationError.expected(
                'command',
                'the command line to run, such as "ls -l"',
                body.command,
              );
            }
            // The design runs a command line, with the 60 s timeout it gives every job.
            const job = await service.start(who, {
              command: body.command,
              shell: true,
              timeoutMs: WORKERCTL_TIMEOUT_MS,
            });
            return { jobID: job.id, status: 'created' };
          }
          case 'stop': {
            const job = await service.stop(who, jobIdOf(body));
            return { jobID: job.id, status: 'stopped' };
          }
          case 'status': {
            const job = await service.get(who, jobIdOf(body));
            const output = await jobOutputText(service, who, job);
            return { jobID: job.id, status: WORKERCTL_STATUS[job.status], output };
          }
        }
      },
    );
  }
}

function jobIdOf(body: ActionBody): string {
  const id = body.jobID;
  if (typeof id !== 'string' || !isJobId(id)) {
    throw ValidationError.expected(
      'jobID',
      'a job id (a UUIDv7 such as 0190f3a2-7c4e-7d1a-9b2c-3f4e5a6b7c8d)',
      id,
    );
  }
  return id;
}
