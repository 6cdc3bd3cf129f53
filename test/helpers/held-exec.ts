import { spawn } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { chmod, copyFile, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pidAlive } from './wait.ts';

/** Why a test of a held exec cannot run here, or false when it can. */
export const CANNOT_HOLD_EXEC =
  readFileSync('/proc/sys/fs/leases-enable', 'utf8').trim() === '1'
    ? false
    : 'file leases are disabled here (fs.leases-enable = 0)';

/** An executable whose exec is held up until `release`, as one on a hung mount is. */
export interface HeldExecutable {
  /** A copy of /bin/sh in a directory of its own that any account may search. */
  readonly path: string;
  /** Lets execs of it through, waits for the holder to be gone and removes the copy. */
  release(): Promise<void>;
}

/**
 * A copy of /bin/sh whose every exec blocks, as an exec of a file on a hung NFS or FUSE mount does:
 * a perl process holds a write lease on it (F_SETLEASE, F_WRLCK), which each open for the exec must
 * wait to break. The holder ignores the SIGIO that asks it to give the lease up, so the exec waits
 * for the kernel's lease-break-time (45 s by default) or for `release`. Resolves once it is held.
 */
export async function holdExec(): Promise<HeldExecutable> {
  const dir = await mkdtemp(join(tmpdir(), 'jw-held-exec-'));
  await chmod(dir, 0o755);
  const path = join(dir, 'sh');
  await copyFile('/bin/sh', path);
  await chmod(path, 0o755);
  // F_SETLEASE is 1024, F_WRLCK 1. A write lease is refused while another description of the
  // file is open: this copy has none.
  const holder = spawn(
    'perl',
    [
      '-e',
      '$SIG{IO} = "IGNORE"; open(my $f, "<", $ARGV[0]) or die "open: $!"; fcntl($f, 1024, 1) or die "lease: $!"; $| = 1; print "held\\n"; sleep;',
      path,
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  const exited = new Promise<void>((resolve) => holder.once('exit', () => resolve()));
  await new Promise<void>((resolve, reject) => {
    holder.stdout.once('data', () => resolve());
    holder.once('exit', (code) => reject(new Error(`the lease holder ended (code ${code})`)));
  });
  return {
    path,
    async release() {
      holder.kill('SIGKILL');
      await exited;
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/**
 * The live processes (not zombies) whose command line is the wrapper's title for JOB_ID: the
 * wrapper, and the job's process until its exec (a copy of the wrapper's memory, or that memory).
 */
export async function wrapperProcesses(jobId: string): Promise<number[]> {
  const title = `jobworker-wrapper ${jobId}\0`;
  const found: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    let cmdline: string;
    try {
      cmdline = readFileSync(`/proc/${name}/cmdline`, 'latin1');
    } catch {
      continue; // ended meanwhile
    }
    if (cmdline.startsWith(title) && (await pidAlive(Number(name)))) found.push(Number(name));
  }
  return found;
}

/** Resolves once no live process bears the wrapper's title for JOB_ID. */
export async function untilNoWrapperProcesses(jobId: string, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const left = await wrapperProcesses(jobId);
    if (left.length === 0) return;
    if (Date.now() > deadline) throw new Error(`processes of job ${jobId} still running: ${left.join(', ')}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}
