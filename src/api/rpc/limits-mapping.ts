/**
 * Resource limits and usage between the proto messages and the service's own types: out as
 * `ResourceLimits` and `JobUsage`, in as the plain input the REST API hands the service, so that
 * core/limits.ts checks both alike and its errors name the same fields.
 */
import { create, type MessageInitShape } from '@bufbuild/protobuf';
import type { IoLimits as IoLimitsType, JobLimits, JobUsage } from '../../core/job.ts';
import {
  type IoLimits,
  JobUsageSchema,
  type ResourceLimits,
  type ResourceLimitsSchema,
  type JobUsage as UsageMessage,
} from './gen/jobworker/v1/job_pb.ts';
import type { JobLimits as StartLimits } from './gen/jobworker/v1/job_service_pb.ts';

export function limitsToProto(limits: JobLimits): MessageInitShape<typeof ResourceLimitsSchema> {
  return {
    ...(limits.cpu !== undefined ? { cpu: limits.cpu } : {}),
    ...(limits.memory !== undefined ? { memory: BigInt(limits.memory) } : {}),
    ...(limits.memorySwap !== undefined ? { memorySwap: BigInt(limits.memorySwap) } : {}),
    ...(limits.io ? { io: ioToProto(limits.io) } : {}),
    ...(limits.pids !== undefined ? { pids: limits.pids } : {}),
  };
}

function ioToProto(io: IoLimitsType) {
  const big = (n: number | undefined) => (n === undefined ? undefined : BigInt(n));
  return {
    readBps: big(io.readBps),
    writeBps: big(io.writeBps),
    readIops: big(io.readIops),
    writeIops: big(io.writeIops),
    device: io.device,
    weight: io.weight,
  };
}

export function usageToProto(usage: JobUsage): UsageMessage {
  const big = (n: number | null) => (n === null ? undefined : BigInt(n));
  return create(JobUsageSchema, {
    cpuSeconds: usage.cpuSeconds ?? undefined,
    cpuThrottledSeconds: usage.cpuThrottledSeconds ?? undefined,
    memoryPeakBytes: big(usage.memoryPeakBytes),
    ioReadBytes: big(usage.ioReadBytes),
    ioWriteBytes: big(usage.ioWriteBytes),
    oomKills: usage.oomKills,
    pidsLimitHits: usage.pidsLimitHits,
  });
}

/** A `ResourceLimits` (queue and user settings) as the service's input. */
export function limitsInput(limits: ResourceLimits): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  if (limits.cpu !== undefined) out.cpu = limits.cpu;
  if (limits.memory !== undefined) out.memory = Number(limits.memory);
  if (limits.memorySwap !== undefined) out.memorySwap = Number(limits.memorySwap);
  if (limits.io) out.io = ioInput(limits.io);
  if (limits.pids !== undefined) out.pids = limits.pids;
  return out;
}

/**
 * A start request's limits as the service's input (API v1's `memory_bytes` and `cpu_millis` too).
 * The service names `memory_swap_bytes` `limits.memorySwap`: rpc-mapping.ts's FIELD_NAMES turns
 * such names back into the proto's.
 */
export function startLimitsInput(limits: StartLimits): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  if (limits.memoryBytes !== undefined) out.memoryBytes = Number(limits.memoryBytes);
  if (limits.cpuMillis !== undefined) out.cpuMillis = limits.cpuMillis;
  if (limits.cpu !== undefined) out.cpu = limits.cpu;
  if (limits.memorySwapBytes !== undefined) out.memorySwap = Number(limits.memorySwapBytes);
  if (limits.io) out.io = ioInput(limits.io);
  if (limits.pids !== undefined) out.pids = limits.pids;
  return out;
}

function ioInput(io: IoLimits): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  if (io.readBps !== undefined) out.readBps = Number(io.readBps);
  if (io.writeBps !== undefined) out.writeBps = Number(io.writeBps);
  if (io.readIops !== undefined) out.readIops = Number(io.readIops);
  if (io.writeIops !== undefined) out.writeIops = Number(io.writeIops);
  if (io.device !== undefined) out.device = io.device;
  if (io.weight !== undefined) out.weight = io.weight;
  return out;
}
