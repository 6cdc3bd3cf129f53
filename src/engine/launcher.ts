import { mkdir, readdir, rm, stat } from 'node:fs/promises';
import type { Clock } from '../core/clock.ts';
import {
  ClaimLostError,
  IllegalTransitionError,
  JobworkerError,
  NotFoundError,
  SpawnError,
} from '../core/errors.ts';
import { isJobId } from '../core/ids.ts';
import { isFinal, type Job, type ProcessIdentity } from '../core/job.ts';
import { outputPaths } from '../output/output-files.ts';
import type { Cgroups } from '../runtime/cgroups.ts';
import {
  isMarkedUnrecorded,
  markUnrecorded,
  readIdentityFile,
  UNRECORDED_FILE,
  unknownIdentity,
} from '../runtime/identity-file.ts';
import { createJobIo, ioDirOwner, type JobIoPaths, removeJobIo } from '../runtime/job-io.ts';
import { jobSpawnRequest } from '../runtime/job-spawn-request.ts';
import { bootId, isSameProcessAlive, sameProcess } from '../runtime/process-identity.ts';
import type { SpawnerClient } from '../runtime/spawner-client.ts';
import { endUnsupervised, killCgroups, killWrapper, stopProcesses } from '../runtime/stop-processes.ts';
import type { JobStore } from '../store/job-store.ts';
import type { SpawnedJob, Supervisor } from './supervisor.ts';
import { untilWritten } from './until-written.ts';

export interface LauncherDeps {
  /** Times the waits for a job's processes to go (the engine's clock). */
  readonly clock: Clock;
  readonly store: JobStore;
  readonly cgroups: Cgroups;
  readonly supervisor: Supervisor;
  readonly spawner: SpawnerClient;
  readonly node: string;
  readonly jobDir: (id: string) => string;
  /** Where the job leaves its result and progress: made, owned by its account, before it is spawned. */
  readonly ioPaths: (id: string) => JobIoPaths;
  /** Checks the job's account on this host before its spawn (`EngineOptions.checkAccount`). */
  readonly checkAccount?: (job: Job) => Promise<void>;
  /** A job that ended without supervision (a claim cancelled): events and what follows. */
  readonly changed: (job: Job) => void;
  /**
   * A claim of this node had gone back to its queue (docs/cluster.md) by the time its start, or its
   * failure to start, was recorded: nothing was recorded, and what was spawned or made was ended.
   */
  readonly claimLost?: (job: Job, err: ClaimLostError) => void;
  /**
   * A claim given back to its queue unstarted, as the store could not be read while starting it
   * (`STORE_UNAVAILABLE`, from `checkAccount`): it did not fail, and a dispatch pass is due soon.
   */
  readonly gaveBack?: (job: Job, err: Error) => void;
  /** Aborted at the engine's close: ends the retries of a claim being given back. */
  readonly closing: AbortSignal;
  /**
   * What went wrong beside a launch that goes on: a job's start that could not be marked
   * unrecorded on disk (`markUnrecorded`), a claim that could not be given back yet, a run that
   * `endUnrecordedRuns` could not end. The error says what a restart would then do wrong.
   */
  readonly onError: (err: Error, jobId: string) => void;
}

/**
 * What `#spawn` made of a claimed job: its processes, why it could not start, or (`stopped`) that a
 * stop came for it before its spawn (`stopBeforeSpawn`), with what was made for it meanwhile.
 */
type Spawned =
  | { readonly ok: true; readonly dir: string; readonly dirs: string[]; readonly spawned: SpawnedJob }
  | { readonly ok: false; readonly dirs: string[]; readonly err: Error; readonly made: boolean }
  | { readonly ok: 'stopped'; readonly dirs: string[] };

/**
 * Starts claimed jobs through the spawner and hands them to the supervisor; at open, sees through
 * the claims an earlier server left half-done. Whether a job began is read from its directory:
 * its wrapper records the job's identity there before the command is executed, so a job that
 * began is never run twice nor recorded as anything but what became of it.
 */
export class Launcher {
  readonly #deps: LauncherDeps;
  /** Resolves once the last job given to `launchAll` began recording its start (or failure). */
  #lastTurn: Promise<void> = Promise.resolve();
  /** Unrecorded runs being ended (`endUnrecordedRuns`), by job id: a launch of that job waits. */
  readonly #ending = new Map<string, Promise<void>>();
  /** Claims of this node a stop is on record for, told by `stopBeforeSpawn`: not spawned once seen. */
  readonly #stopped = new Set<string>();

  constructor(deps: LauncherDeps) {
    this.#deps = deps;
  }

  /**
   * Starts the jobs of a claimed batch together: their directories, cgroups and spawn requests
   * go out at once (the spawner takes the requests of one event-loop turn in one write), and
   * their starts are recorded one after another in claim order (across batches too), so
   * `job:started` keeps the order of priority. One promise per job, in the same order; what fails is recorded on its
   * job and the others go on.
   */
  launchAll(jobs: readonly Job[]): Promise<Job>[] {
    return jobs.map((job) => {
      const spawning = this.#spawn(job);
      // Its turn comes once it is spawned and the job before it began recording: the records
      // reach the store in claim order, and those of one turn are committed together.
      const turn = this.#lastTurn.then(() => spawning);
      const recorded = turn.then((spawn) => this.#record(job, spawn));
      this.#lastTurn = turn.then(
        () => undefined,
        () => undefined,
      );
      return recorded.finally(() => this.#stopped.delete(job.id));
    });
  }

  /**
   * Tells a launch that a stop of its claimed job is on record (`JobStore.cancelQueued`): one that
   * has not sent the job to the spawner yet never does, and gives the claim back, which the store
   * makes a cancel (`releaseClaim`); one past it leaves the stop to the supervisor, which carries
   * out the stop that `markStarted` answers with. For a claim of this node, launched or about to be
   * (its claim being handed to `launchAll`); forgotten once its launch ends or the claim is given back.
   */
  stopBeforeSpawn(id: string): void {
    this.#stopped.add(id);
  }

  /** The job's directory, cgroups and processes; what failed, with what was made for it. */
  async #spawn(job: Job): Promise<Spawned> {
    const { spec, id } = job;
    const dir = this.#deps.jobDir(id);
    let dirs: string[] = [];
    // Whether its directory is this launch's: one found before is an earlier run's until `#endRun`.
    let made = false;
    try {
      // Should that end fail, the launch tries it again itself (below).
      const ending = this.#ending.get(id);
      if (ending) await ending.catch(() => undefined);
      // Before anything is made as it: admitted by another node, its account is that node's.
      await this.#deps.checkAccount?.(job);
      // The directory is made last before the spawn: after a crash, a claimed job whose
      // directory exists may have been sent to the spawner (see recoverClaims).
      await mkdir(dir, { mode: 0o700 }).catch(async (err: unknown) => {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
        // Left by a run of this job that this node began and never recorded, whose claim another
        // node gave back while this one was lost (docs/cluster.md): the claim is this node's now.
        await this.#endRun(id, job);
        await mkdir(dir, { mode: 0o700 });
      });
      made = true;
      // Where it may leave its result and progress, made (owned by its account) before it runs. A
      // crash right here leaves a directory without a start: recorded failed, never run twice.
      const io = this.#deps.ioPaths(id);
      await createJobIo(io, spec.account);
      dirs = await this.#deps.cgroups.create(id, spec.limits, spec.cwd);
      const request = jobSpawnRequest(spec, id, dir, dirs, io);
      // The last look: from here on, the stop is the supervisor's to carry out once it started.
      if (this.#stopped.has(id)) return { ok: 'stopped', dirs };
      let reply = await this.#deps.spawner.start(request);
      // The spawner died before any wrapper took the request (a wrapper's first act is to create
      // the job's output files): nothing of it ran, so the spawner's successor gets it. Once only:
      // a request that itself kills the spawner must not go round for ever.
      if (reply.kind === 'unknown' && !(await wrapperTookIt(dir)))
        reply = await this.#deps.spawner.start(request);
      if (reply.kind === 'started') {
        const identity: ProcessIdentity = {
          pid: reply.jobPid,
          startTicks: reply.jobTicks,
          bootId: bootId(),
          cgroups: dirs,
          wrapper: { pid: reply.wrapperPid, startTicks: reply.wrapperTicks },
        };
        return { ok: true, dir, dirs, spawned: { identity, exited: reply.exited } };
      }
      // The spawner died with the request in flight again, or after a wrapper took it (every
      // wrapper it was starting has decided by then), or refused it: a wrapper that recorded the
      // job's identity began it all the same.
      const found = await readIdentityFile(dir, dirs);
      if (!found) {
        throw new SpawnError(
          reply.kind === 'refused'
            ? reply.reason
            : 'the spawner stopped while starting it, before its command began',
        );
      }
      return {
        ok: true,
        dir,
        dirs,
        spawned: { identity: found.identity, exited: Promise.resolve('orphaned') },
      };
    } catch (err) {
      return { ok: false, dirs, err: err as Error, made };
    }
  }

  async #record(job: Job, spawn: Spawned): Promise<Job> {
    const { cgroups, supervisor } = this.#deps;
    if (spawn.ok === 'stopped') return this.#cancelUnspawned(job, spawn.dirs);
    if (!spawn.ok) {
      this.#removeCgroups(spawn.dirs);
      // The store could not be read (the account's check): the job is not at fault, and a failure
      // recorded now would be one it never had. Only the check reads the store, before anything
      // is made for the job.
      if (spawn.err instanceof JobworkerError && spawn.err.code === 'STORE_UNAVAILABLE') {
        return this.#putBack(job, spawn.err);
      }
      return this.#failed(job, spawn.err, {}, spawn.made);
    }
    try {
      return await supervisor.started(job, spawn.spawned, spawn.dir);
    } catch (err) {
      // Its processes run but nothing supervises them: end them before recording the failure.
      // Marked first, on disk: a server that dies before the failure is recorded (the record may
      // wait for a full disk to have room) must not adopt the job at its restart (recoverClaims).
      await markUnrecorded(spawn.dir).catch((markErr: unknown) =>
        this.#deps.onError(
          new Error(
            `a job whose start could not be recorded could not be marked so on disk; a restart before its failure is recorded would adopt it: ${String(markErr)}`,
            { cause: markErr },
          ),
          job.id,
        ),
      );
      await stopProcesses(spawn.spawned.identity, cgroups, 0, true, this.#deps.clock).catch(() => undefined);
      this.#removeCgroups(spawn.dirs);
      // The claim went back to its queue while this node was cut off (docs/cluster.md): the job is
      // not this node's to record; another node runs it.
      if (err instanceof ClaimLostError) return this.#letGo(job, err);
      // Its command began (the spawner answers once it is exec'd): a retry would run it again.
      const reason = `its start could not be recorded, so it was stopped: ${(err as Error).message}`;
      return this.#failed(job, new Error(reason, { cause: err }), { retry: false, ran: true });
    }
  }

  /**
   * `Supervisor.failedToStart`, but for a claim that went back to its queue meanwhile (this node
   * was cut off from the store while it tried to record the failure, and declared lost): nothing is
   * recorded, since another node may run the job now, and what was made for it here goes (its
   * directory only when `made` by this launch: see `#letGo`).
   */
  async #failed(
    job: Job,
    err: Error,
    options: { retry?: boolean; ran?: boolean } = {},
    made = true,
  ): Promise<Job> {
    try {
      return await this.#deps.supervisor.failedToStart(job, err, options);
    } catch (refused) {
      if (!(refused instanceof ClaimLostError)) throw refused;
      return this.#letGo(job, refused, made);
    }
  }

  /**
   * Removes what this node made for a job whose claim it lost (its processes are ended), and tells.
   * A directory this launch did not make (`made` false) is left: it holds what an earlier run of
   * the job here left, which `endUnrecordedRuns` looks for at the next start.
   */
  async #letGo(job: Job, err: ClaimLostError, made = true): Promise<Job> {
    if (made) await rm(this.#deps.jobDir(job.id), { recursive: true, force: true }).catch(() => undefined);
    await removeJobIo(this.#deps.ioPaths(job.id), job.spec.account, {
      clock: this.#deps.clock,
      remover: this.#deps.spawner,
    }).catch(() => undefined);
    this.#deps.claimLost?.(job, err);
    return job;
  }

  /**
   * Gives back the claim of a job that could not be started because the store could not be read
   * (`#record`): nothing was made for it, so it goes back to its queue, not to history as failed.
   * Tried again while the store stays away, until the engine closes (the next start gives the claim
   * back then: `recoverClaims`). A stop recorded on the claim makes it a cancel, as at
   * `releaseClaim`. A job that is not this node's claim any more is left as it is.
   */
  async #putBack(job: Job, err: Error): Promise<Job> {
    let released: Job | undefined;
    try {
      released = await untilWritten(() => this.#deps.store.releaseClaim(job.id, this.#deps.node), {
        clock: this.#deps.clock,
        signal: this.#deps.closing,
        onFirstFailure: (failure) =>
          this.#deps.onError(
            new Error(
              `a job the store could not be read for could not be given back to its queue; retrying until it can: ${String(failure)}`,
              { cause: failure },
            ),
            job.id,
          ),
      });
    } catch (refused) {
      // Decided meanwhile (run by another node, say): not this node's to give back.
      if (refused instanceof IllegalTransitionError || refused instanceof NotFoundError) {
        this.#deps.claimLost?.(job, new ClaimLostError(job.id, this.#deps.node));
        return job;
      }
      throw refused;
    }
    if (released === undefined) return job;
    if (released.status === 'cancelled') this.#deps.changed(released);
    else if (released.hold === null) this.#deps.gaveBack?.(released, err);
    // Claimed by another node since it went back (this node was declared lost meanwhile).
    else this.#deps.claimLost?.(job, new ClaimLostError(job.id, this.#deps.node));
    return released;
  }

  /**
   * A claimed job stopped before its spawn: what was made for it is removed, its directory first (a
   * server dying after that gives the claim back at its restart, `recoverClaims`: it was never
   * sent), and the claim is given back, which the stop on record makes a cancel. Should the store
   * refuse that, the job is recorded failed, not retried, rather than left claimed. A directory
   * that cannot be removed is left (nothing of it ran): the claim is given back all the same.
   */
  async #cancelUnspawned(job: Job, dirs: readonly string[]): Promise<Job> {
    this.#removeCgroups(dirs);
    await rm(this.#deps.jobDir(job.id), { recursive: true, force: true }).catch(() => undefined);
    await removeJobIo(this.#deps.ioPaths(job.id), job.spec.account, {
      clock: this.#deps.clock,
      remover: this.#deps.spawner,
    }).catch(() => undefined);
    try {
      const released = await this.#deps.store.releaseClaim(job.id, this.#deps.node);
      this.#deps.changed(released);
      return released;
    } catch (err) {
      const reason = `it was stopped before it started, and its claim could not be given back: ${(err as Error).message}`;
      return this.#failed(job, new Error(reason, { cause: err }), { retry: false });
    }
  }

  /**
   * Claims this node made and never saw through (the server died while starting them). A job
   * whose wrapper recorded its identity began: it is adopted like any running job, so one that
   * still runs is supervised and one that ended gets its recorded outcome. One whose directory
   * exists without that record never ran its command: whatever was made for it is killed and it
   * is recorded failed. One without a directory was never sent and goes back to its queue.
   */
  async recoverClaims(): Promise<void> {
    const { store, cgroups, supervisor } = this.#deps;
    for (const job of await store.listStarting(this.#deps.node)) {
      const dir = this.#deps.jobDir(job.id);
      const dirs = cgroups.existing(job.id);
      const found = await readIdentityFile(dir, dirs);
      if (found) {
        await supervisor.recover([await store.markStarted(job.id, found.identity, found.at, job.node)]);
        continue;
      }
      // Its command began, but its start could not be recorded and the server was stopping it
      // when it died: whatever is left of it is ended, and it is recorded failed, not retried. The
      // mark counts by its presence, as at `Supervisor.recover`: one that cannot be read leaves
      // only the job's cgroups to end.
      if (isMarkedUnrecorded(dir)) {
        const unrecorded = await readIdentityFile(dir, dirs, UNRECORDED_FILE);
        supervisor.endUnrecordedLater(job, unrecorded?.identity ?? unknownIdentity(dirs));
        continue;
      }
      if (dirs.length > 0) {
        await killCgroups(dirs, cgroups, this.#deps.clock);
        cgroups.remove(dirs);
      }
      const sent = await stat(dir).then(
        () => true,
        () => false,
      );
      if (!sent) {
        await this.releaseClaim(job.id);
        continue;
      }
      await this.#failed(
        job,
        new Error('the server stopped while starting it, before its command began; it is not run again'),
        { retry: false },
      );
    }
  }

  /**
   * Ends the runs this node began whose start it never recorded and whose claim another node then
   * gave back: the server died between a job's spawn and its recorded start, and was declared lost
   * before it came back (docs/cluster.md), so `recoverClaims`, which reads this node's claims, does
   * not see them. Each is found by its directory (not a job supervised or being launched here),
   * whose identity file names processes still alive that the store does not record as the job's:
   * they are killed, and what the run made removed (`#endRun`). Returns the ids of the jobs whose
   * runs were ended. For a node of a cluster, at its start; a launch of such a job waits for it.
   * Ends at the next directory once `signal` aborts (the engine closing).
   */
  async endUnrecordedRuns(
    jobsDir: string,
    busy: (id: string) => boolean,
    signal: AbortSignal,
  ): Promise<string[]> {
    const ended: string[] = [];
    for (const id of await readdir(jobsDir)) {
      if (signal.aborted) break;
      if (!isJobId(id) || busy(id) || this.#ending.has(id)) continue;
      try {
        if (await this.#endIfUnrecorded(id, busy, signal)) ended.push(id);
      } catch (err) {
        // Told, and the others still looked at: the next start tries this one again.
        this.#deps.onError(err as Error, id);
      }
    }
    return ended;
  }

  /**
   * Ends the run left alive in the directory of a deleted job, before retention removes that
   * directory: a node declared lost keeps running its jobs, which other nodes record `lost` and may
   * delete, and once the directory naming the run is gone no one finds it (`endUnrecordedRuns`
   * reads the directories), so it would run on, unsupervised, for ever. Its directory and io
   * directory go with it. True when a run was alive and is now ended.
   */
  async endDeletedRun(id: string): Promise<boolean> {
    const running = this.#ending.get(id);
    if (running) {
      await running;
      return true;
    }
    const found = await this.#liveRun(id);
    if (found === undefined) return false;
    const ending = this.#endRun(id, undefined, { removeFiles: true, only: found }).finally(() =>
      this.#ending.delete(id),
    );
    this.#ending.set(id, ending);
    await ending;
    return true;
  }

  /** The run named by a job's directory, when it is still alive (its process, or its cgroups not empty). */
  async #liveRun(id: string): Promise<ProcessIdentity | undefined> {
    const { cgroups } = this.#deps;
    const dirs = cgroups.existing(id);
    const found = await readIdentityFile(this.#deps.jobDir(id), dirs);
    const alive =
      found && (isSameProcessAlive(found.identity) || (dirs.length > 0 && !cgroups.isEmpty(dirs)));
    return alive ? found.identity : undefined;
  }

  /** `endUnrecordedRuns` for one job directory: true when it held such a run, now ended. */
  async #endIfUnrecorded(id: string, busy: (id: string) => boolean, signal: AbortSignal): Promise<boolean> {
    const identity = await this.#liveRun(id);
    if (identity === undefined) return false;
    const job = await this.#deps.store.getJob(id);
    if (job?.process && sameProcess(job.process, identity)) return false; // on record: not ours to end
    // Looked at again after the reads: a launch that began meanwhile makes its own run, and a
    // close (which lets go of the jobs it supervised) leaves everything as it is.
    if (signal.aborted || busy(id) || this.#ending.has(id)) return false;
    // A job this node recorded as ended keeps its output (history); other directories go.
    const keep = job !== undefined && isFinal(job.status) && job.node === this.#deps.node;
    const ending = this.#endRun(id, job, { removeFiles: !keep, only: identity, signal }).finally(() =>
      this.#ending.delete(id),
    );
    this.#ending.set(id, ending);
    await ending;
    return true;
  }

  /**
   * Ends a run of a job that this node began and never recorded: its recorded process and its
   * cgroups are killed (its process group is not known to be its own any more: a pgid may be
   * reused once its members are gone) and its cgroups removed; with `removeFiles`, its directory
   * and io directory too, so that a later run starts afresh and nothing of this one (a result,
   * say) is taken for its. With `only`, nothing is done unless the directory still names that run.
   */
  async #endRun(
    id: string,
    job: Job | undefined,
    options: { removeFiles?: boolean; only?: ProcessIdentity; signal?: AbortSignal } = {},
  ): Promise<void> {
    const { cgroups, clock } = this.#deps;
    const dir = this.#deps.jobDir(id);
    const dirs = cgroups.existing(id);
    const identity = (await readIdentityFile(dir, dirs))?.identity ?? unknownIdentity(dirs);
    if (options.only && !sameProcess(identity, options.only)) return;
    // The wrapper first: left alive, it would write the run's end into the directory removed
    // below, or into the next run's, made afresh in its place.
    if (!(await killWrapper(identity, cgroups, clock)))
      throw new Error(
        `the wrapper of an earlier run of job ${id} (pid ${identity.wrapper?.pid}) did not end`,
      );
    await endUnsupervised(identity, cgroups, clock);
    this.#removeCgroups(dirs);
    if (options.removeFiles === false) return;
    await rm(dir, { recursive: true, force: true });
    const io = this.#deps.ioPaths(id);
    const account = job ? job.spec.account : await ioDirOwner(io.dir);
    // The engine's close ends the walk as the job's account (as it ends the io sweep's).
    if (account !== undefined) {
      await removeJobIo(io, account, {
        clock,
        remover: this.#deps.spawner,
        ...(options.signal ? { signal: options.signal } : {}),
      });
    }
  }

  /**
   * Gives a claimed job that was never sent to the spawner back to its queue. A stop recorded
   * while it was claimed (`cancelQueued` records it on the claim, for the launch to carry out)
   * makes it a cancel, in the store's same change: it never started, and must not start later only
   * to be stopped.
   */
  async releaseClaim(id: string): Promise<void> {
    this.#stopped.delete(id);
    const released = await this.#deps.store.releaseClaim(id, this.#deps.node);
    if (released.status === 'cancelled') this.#deps.changed(released);
  }

  #removeCgroups(dirs: readonly string[]): void {
    try {
      this.#deps.cgroups.remove(dirs);
    } catch {
      // a cgroup the kernel still holds is removed by no one: it is empty and costs nothing
    }
  }
}

/** Whether a wrapper began on the job in `dir`: it creates the job's output files first of all. */
async function wrapperTookIt(dir: string): Promise<boolean> {
  return stat(outputPaths(dir).stdout).then(
    () => true,
    () => false,
  );
}
