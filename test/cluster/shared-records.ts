import type { Job } from '../../src/core/job.ts';
import type { JobEnginePort } from '../../src/service/job-service.ts';
import type { Harness } from '../helpers/engine-harness.ts';

/**
 * Node A's engine, reading job records as a shared store would: its own first, then node C's. Until
 * the shared PostgreSQL store is on this branch, this is how A learns of a job that only C runs;
 * everything else is A's own real engine. (The integrator's 3-node test runs the real thing.)
 */
export function sharedRecords(a: Harness, c: Harness): JobEnginePort {
  const get = (id: string): Promise<Job> => a.engine.get(id).catch(() => c.engine.get(id));
  const getRecorded = (id: string): Promise<Job> =>
    a.engine.getRecorded(id).catch(() => c.engine.getRecorded(id));
  const recordStop: JobEnginePort['recordStop'] = (id, caller, options) =>
    a.engine.recordStop(id, caller, options).catch(() => c.engine.recordStop(id, caller, options));
  return new Proxy(a.engine, {
    get(target, key) {
      if (key === 'get') return get;
      if (key === 'getRecorded') return getRecorded;
      if (key === 'recordStop') return recordStop;
      const value = Reflect.get(target, key, target) as unknown;
      return typeof value === 'function' ? value.bind(target) : value;
    },
  }) as JobEnginePort;
}
