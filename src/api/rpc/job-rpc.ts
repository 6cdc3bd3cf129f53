import type { HandlerContext, ServiceImpl } from '@connectrpc/connect';
import type { Clock, ClockTimer } from '../../core/clock.ts';
import type { JobService as Jobs } from '../../service/job-service.ts';
import type { JobService } from './gen/jobworker/v1/job_service_pb.ts';
import { CONNECTION, callerOf } from './rpc-authentication.ts';
import {
  endToProto,
  heartbeatToProto,
  jobToProto,
  listRequest,
  outputCursor,
  outputSelector,
  outputToProto,
  pageTokenError,
  progressToProto,
  startInput,
  watchMessageToProto,
} from './rpc-mapping.ts';

/** jobworker.v1.JobService over the service every adapter calls (authorization and audit there). */
export function jobRpc(jobs: Jobs): ServiceImpl<typeof JobService> {
  return {
    async start(req, ctx) {
      const { job, created } = await jobs.submit(callerOf(ctx), startInput(req));
      return { job: jobToProto(job), created };
    },
    async get(req, ctx) {
      return { job: jobToProto(await jobs.get(callerOf(ctx), req.id)) };
    },
    async list(req, ctx) {
      const page = await jobs.list(callerOf(ctx), listRequest(req)).catch(pageTokenError);
      return { jobs: page.jobs.map(jobToProto), nextPageToken: page.nextCursor ?? '' };
    },
    async resolve(req, ctx) {
      return { job: jobToProto(await jobs.resolve(callerOf(ctx), req.ref)) };
    },
    async stop(req, ctx) {
      const graceMs = req.graceMs === undefined ? {} : { graceMs: Number(req.graceMs) };
      return { job: jobToProto(await jobs.stop(callerOf(ctx), req.id, graceMs)) };
    },
    async pause(req, ctx) {
      return { job: jobToProto(await jobs.pause(callerOf(ctx), req.id)) };
    },
    async resume(req, ctx) {
      return { job: jobToProto(await jobs.resume(callerOf(ctx), req.id)) };
    },
    async delete(req, ctx) {
      return { job: jobToProto(await jobs.delete(callerOf(ctx), req.id)) };
    },
    async prune(req, ctx) {
      const olderThanMs = req.olderThanMs === undefined ? {} : { olderThanMs: Number(req.olderThanMs) };
      return { deleted: BigInt(await jobs.prune(callerOf(ctx), olderThanMs)) };
    },
    async waitFor(req, ctx) {
      return { job: jobToProto(await jobs.waitFor(callerOf(ctx), req.id, ctx.signal)) };
    },
    async *streamOutput(req, ctx) {
      // Checked before the first message (access, id, cursor, capacity), so a refusal is a status.
      const events = await jobs.openOutput(callerOf(ctx), req.id, {
        selector: outputSelector(req.view),
        cursor: outputCursor(req.cursor),
        follow: req.follow,
        signal: ctx.signal,
        progress: req.progress,
      });
      // A follow of a quiet job sends nothing for hours: heartbeats tell a client it is alive.
      const messages = req.follow ? jobs.withHeartbeats(events) : events;
      // Pulled one message at a time: a client that reads slowly holds the next disk read back
      // (HTTP/2 flow control, then the socket's drain), so nothing piles up in the server.
      async function* protos() {
        for await (const event of messages) {
          if (event.type === 'heartbeat') {
            yield heartbeatToProto();
            continue;
          }
          if (event.type === 'end') {
            yield endToProto(event.job);
            return;
          }
          if (event.type === 'progress') {
            yield progressToProto(event.job);
            continue;
          }
          for (const output of event.events) yield outputToProto(output);
        }
      }
      const writes = new HeldWrites();
      const stopCutting = cutWhenEnded(ctx, events.ended, jobs.clock, writes);
      try {
        yield* writes.of(protos());
      } finally {
        stopCutting();
        // The heartbeats close `events` once its pending read settles, if one is; closed here
        // otherwise (not awaited then: that read ends with the call's signal).
        if (messages === events) await events.return(undefined);
        else void events.return(undefined).catch(() => {});
      }
    },
    async *watchEvents(req, ctx) {
      // Refusals (capacity) come before the first message, as a status.
      const messages = await jobs.watchEvents(callerOf(ctx), {
        lastEventId: req.lastEventId === '' ? undefined : req.lastEventId,
        signal: ctx.signal,
      });
      const writes = new HeldWrites();
      const stopCutting = cutWhenEnded(ctx, messages.ended, jobs.clock, writes);
      async function* protos() {
        for await (const message of messages) yield watchMessageToProto(message);
      }
      try {
        yield* writes.of(protos());
      } finally {
        stopCutting();
        await messages.return(undefined);
      }
    },
  };
}

/**
 * How long a stream ended for its caller may wait for its client to take the message being written
 * before its response is cut: one that reads gets the stream's end with its status
 * (UNAUTHENTICATED); one that does not read would hold its place for as long as it does not.
 */
const CUT_GRACE_MS = 1000;

/** Whether the RPC's writer holds one of a handler's messages (is writing it, maybe waiting for room). */
class HeldWrites {
  held = false;

  /** `messages`, noting while each is held. */
  async *of<T>(messages: AsyncIterable<T>): AsyncGenerator<T> {
    for await (const message of messages) {
      this.held = true;
      yield message;
      this.held = false;
    }
  }
}

/**
 * Once `ended` aborts (the stream was ended for its caller), cuts the call's response if its writer
 * still holds a message `CUT_GRACE_MS` later: the stream itself ends, with its status, at its next
 * read, which a client that stopped reading never lets come. Returns what stops listening.
 */
function cutWhenEnded(ctx: HandlerContext, ended: AbortSignal, clock: Clock, writes: HeldWrites): () => void {
  const cut = ctx.values.get(CONNECTION)?.cut;
  if (cut === undefined) return () => undefined;
  let timer: ClockTimer | undefined;
  const wait = (): void => {
    timer = clock.setTimer(() => {
      if (writes.held) cut();
    }, CUT_GRACE_MS);
  };
  if (ended.aborted) wait();
  else ended.addEventListener('abort', wait, { once: true });
  return () => {
    ended.removeEventListener('abort', wait);
    timer?.clear();
  };
}
