/**
 * The wire format between the server and its native spawner (see the header of
 * src/runtime/native/jobworker-spawner.c): length-prefixed requests of NUL-terminated fields
 * one way, the first naming the request's kind (`start`, `remove`, `cancel`), one text line per
 * reply the other.
 */

/** What the spawner needs to start one job. */
export interface SpawnRequest {
  readonly jobId: string;
  /** The job's directory: the wrapper writes its identity and exit records there. */
  readonly dir: string;
  readonly cwd: string;
  /** The executable's resolved path, exec'd as is (no PATH search, no shell). */
  readonly path: string;
  /** The exact argv; argv[0] is the command as the user wrote it. */
  readonly argv: readonly string[];
  /** The job's whole environment. */
  readonly env: Readonly<Record<string, string>>;
  /** The `cgroup.procs` file of each of the job's cgroups, which its process joins before exec. */
  readonly cgroupProcs: readonly string[];
  /** The job's output files, created by the wrapper (exclusive, append, 0600). */
  readonly stdoutPath: string;
  readonly stderrPath: string;
  /**
   * The account the job's process switches to before it enters `cwd` (its output files are made
   * its own too); absent: it stays the spawner's account. Only a root spawner can switch.
   */
  readonly user?: SpawnUser;
  /**
   * The namespaces the job's process enters before the drop, as the spawner's options: `pid`,
   * `net`, `tmp`, `uts=NAME`, `ro=PATH`, `hide=PATH` (`ro?=PATH`, `hide?=PATH`: skipped when the
   * path is not there), and with `tmp` the job's io directory,
   * `io=PATH`, bound back into its private /tmp (see `isolationOptions`). Absent: none.
   */
  readonly isolation?: readonly string[];
}

/** Ids a job's process takes before exec: real, effective and saved uid and gid, and its groups. */
export interface SpawnUser {
  readonly uid: number;
  readonly gid: number;
  /** Supplementary group ids (setgroups); empty for none. */
  readonly groups: readonly number[];
}

/** A line the spawner wrote. */
export type SpawnerLine =
  | {
      readonly type: 'ok';
      readonly request: string;
      readonly wrapperPid: number;
      readonly wrapperTicks: number;
      readonly jobPid: number;
      readonly jobTicks: number;
    }
  | {
      readonly type: 'err';
      readonly request: string;
      readonly stage: string;
      readonly errno: number;
      readonly message: string;
    }
  /** A removal (`encodeRemoval`) left nothing below its directory. */
  | { readonly type: 'removed'; readonly request: string }
  | { readonly type: 'exit'; readonly wrapperPid: number; readonly waitStatus: number };

/** A start request as bytes: a 4-byte little-endian length, then its fields. */
export function encodeRequest(id: string, request: SpawnRequest): Buffer {
  const env = Object.entries(request.env).map(([key, value]) => `${key}=${value}`);
  return frame([
    'start',
    id,
    request.jobId,
    request.dir,
    request.cwd,
    request.path,
    request.stdoutPath,
    request.stderrPath,
    String(request.user?.uid ?? -1),
    String(request.user?.gid ?? -1),
    String(request.argv.length),
    ...request.argv,
    String(env.length),
    ...env,
    String(request.cgroupProcs.length),
    ...request.cgroupProcs,
    String(request.user?.groups.length ?? 0),
    ...(request.user?.groups ?? []).map(String),
    String(request.isolation?.length ?? 0),
    ...(request.isolation ?? []),
  ]);
}

/**
 * A request to remove everything below `dir` (not `dir` itself) as `user`, in a child of the
 * spawner that becomes that account first: answered `removed`, or `err` with what it could not
 * remove first.
 */
export function encodeRemoval(id: string, dir: string, user: SpawnUser): Buffer {
  return frame([
    'remove',
    id,
    dir,
    String(user.uid),
    String(user.gid),
    String(user.groups.length),
    ...user.groups.map(String),
  ]);
}

/** Ends removal `id` (its child is killed); the removal is answered once its child has ended. */
export function encodeCancel(id: string): Buffer {
  return frame(['cancel', id]);
}

function frame(fields: readonly string[]): Buffer {
  for (const field of fields) {
    // A NUL would shift every field after it; the spec refuses them, this is the last guard.
    if (field.includes('\0'))
      throw new Error(`A spawn request field holds a NUL byte: ${JSON.stringify(field)}`);
  }
  const payload = Buffer.from(`${fields.join('\0')}\0`, 'utf8');
  const bytes = Buffer.allocUnsafe(4 + payload.length);
  bytes.writeUInt32LE(payload.length, 0);
  payload.copy(bytes, 4);
  return bytes;
}

/** Parses one reply line; undefined for a line that is not one. */
export function parseSpawnerLine(line: string): SpawnerLine | undefined {
  const parts = line.split(' ');
  const [type, a = '', b, c, d, e] = parts;
  if (type === 'ok') {
    const [wrapperPid, wrapperTicks, jobPid, jobTicks] = [b, c, d, e].map(Number) as [
      number,
      number,
      number,
      number,
    ];
    if (![wrapperPid, jobPid].every((n) => Number.isInteger(n) && n > 0)) return undefined;
    return { type, request: a, wrapperPid, wrapperTicks, jobPid, jobTicks };
  }
  if (type === 'removed') return { type, request: a };
  if (type === 'err') {
    return { type, request: a, stage: b ?? '', errno: Number(c), message: parts.slice(4).join(' ') };
  }
  if (type === 'exit') {
    const wrapperPid = Number(a);
    if (!Number.isInteger(wrapperPid)) return undefined;
    return { type, wrapperPid, waitStatus: Number(b) };
  }
  return undefined;
}
