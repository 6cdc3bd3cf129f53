import type { Caller } from '../../../auth/principal.ts';
import { CursorError } from '../../../core/errors.ts';
import type { Job } from '../../../core/job.ts';
import type { JobService } from '../../../service/job-service.ts';

/** The most output a JSON answer carries: the newest 1 MiB (the whole output is on /v1/jobs/{id}/output). */
export const MAX_TEXT_OUTPUT_BYTES = 1024 * 1024;

/**
 * A job's combined output (stdout and stderr as the server observed them) as UTF-8 text, for the
 * designs that answer output inside a JSON body. At most the newest `MAX_TEXT_OUTPUT_BYTES`: the
 * read starts that far before the end, and keeps a rolling tail if the view grew meanwhile, so
 * memory stays bounded whatever the job wrote.
 */
export async function jobOutputText(service: JobService, who: Caller, job: Job): Promise<string> {
  const written = job.outputBytes.stdout + job.outputBytes.stderr;
  const from = Math.max(0, written - MAX_TEXT_OUTPUT_BYTES);
  const open = (cursor: number) =>
    service.openOutput(who, job.id, { selector: 'all', cursor, follow: false });
  // The combined view of a running job may not have observed all of `written` yet.
  const events = await open(from).catch((err: unknown) => {
    if (err instanceof CursorError) return open(0);
    throw err;
  });
  let chunks: Buffer[] = [];
  let bytes = 0;
  for await (const event of events) {
    if (event.type !== 'output') continue;
    for (const e of event.events) {
      if (e.type !== 'data') continue;
      chunks.push(e.data);
      bytes += e.data.length;
      if (bytes > 2 * MAX_TEXT_OUTPUT_BYTES) {
        const tail = Buffer.concat(chunks).subarray(-MAX_TEXT_OUTPUT_BYTES);
        chunks = [tail];
        bytes = tail.length;
      }
    }
  }
  const all = Buffer.concat(chunks);
  return all.subarray(Math.max(0, all.length - MAX_TEXT_OUTPUT_BYTES)).toString('utf8');
}
