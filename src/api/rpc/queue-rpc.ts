import type { ServiceImpl } from '@connectrpc/connect';
import type { JobService as Jobs } from '../../service/job-service.ts';
import type { QueueService } from './gen/jobworker/v1/queue_service_pb.ts';
import { callerOf } from './rpc-authentication.ts';
import { drainToProto, queueSettings, queueToProto } from './rpc-mapping.ts';

/** jobworker.v1.QueueService: queues and this server's draining. */
export function queueRpc(jobs: Jobs): ServiceImpl<typeof QueueService> {
  return {
    async listQueues(_req, ctx) {
      callerOf(ctx);
      return { queues: (await jobs.queues()).map(queueToProto) };
    },
    async getQueue(req, ctx) {
      callerOf(ctx);
      return { queue: queueToProto(await jobs.queue(req.name)) };
    },
    async updateQueue(req, ctx) {
      return { queue: queueToProto(await jobs.setQueue(callerOf(ctx), req.name, queueSettings(req))) };
    },
    async pauseQueue(req, ctx) {
      return { queue: queueToProto(await jobs.setQueue(callerOf(ctx), req.name, { paused: true })) };
    },
    async resumeQueue(req, ctx) {
      return { queue: queueToProto(await jobs.setQueue(callerOf(ctx), req.name, { paused: false })) };
    },
    async getDrainState(_req, ctx) {
      return { state: drainToProto(jobs.drainState(callerOf(ctx))) };
    },
    async drain(req, ctx) {
      return { state: drainToProto(await jobs.drain(callerOf(ctx), { wait: req.wait, signal: ctx.signal })) };
    },
    async undrain(_req, ctx) {
      return { state: drainToProto(await jobs.undrain(callerOf(ctx))) };
    },
  };
}
