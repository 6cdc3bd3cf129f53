import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';

/** Why a test of a held directory cannot run here, or false when it can. */
export const CANNOT_HOLD_DIR =
  process.arch !== 'x64'
    ? 'fanotify is called by its x86-64 system call numbers'
    : process.getuid?.() !== 0
      ? 'fanotify takes root'
      : false;

/** A directory whose opens for reading wait until `release`, as one on a hung mount does. */
export interface HeldDirectory {
  /** Resolves once COUNT opens of it (1 by default) have come to wait, in all. */
  opened(count?: number): Promise<void>;
  /** Lets the opens through and waits for the holder to be gone. */
  release(): Promise<void>;
}

/**
 * Holds every open of DIR itself (not of what is in it) for reading: a perl process marks it for
 * fanotify's permission event (`FAN_OPEN_PERM | FAN_ONDIR`) and never answers, so each such open
 * waits, killably, until the holder is gone (the kernel then lets them through). An `O_PATH` open
 * is not held. Resolves once the mark is on.
 */
export async function holdDirOpens(dir: string): Promise<HeldDirectory> {
  // fanotify_init (300): FAN_CLASS_CONTENT | FAN_CLOEXEC, events' files opened O_RDONLY.
  // fanotify_mark (301): FAN_MARK_ADD, FAN_OPEN_PERM | FAN_ONDIR, AT_FDCWD, DIR.
  const holder = spawn(
    'perl',
    [
      '-e',
      [
        '$| = 1;',
        'my $fd = syscall(300, 0x4 | 0x1, 0); die "fanotify_init: $!" if $fd < 0;',
        'syscall(301, $fd, 1, 0x10000 | 0x40000000, -100, $ARGV[0]) == 0 or die "fanotify_mark: $!";',
        'print "marked\\n";',
        'open(my $f, "<&=", $fd) or die "fdopen: $!";',
        // One read may return several events: each open that waits is one of them (24 bytes each:
        // struct fanotify_event_metadata without info records).
        'while (1) { my $events; my $n = sysread($f, $events, 4096); die "read: $!" if !$n;',
        'print "opened\\n" x int($n / 24); }',
      ].join(' '),
      dir,
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  const exited = new Promise<void>((resolve) => holder.once('exit', () => resolve()));
  const lines = createInterface({ input: holder.stdout });
  let marked = false;
  let opens = 0;
  const waiting = new Set<() => void>();
  lines.on('line', (line) => {
    if (line === 'marked') marked = true;
    if (line === 'opened') opens++;
    for (const check of waiting) check();
  });
  /** Resolves once `done` holds (checked at each line the holder says). */
  const until = (done: () => boolean) =>
    new Promise<void>((resolve, reject) => {
      const check = () => {
        if (!done()) return;
        waiting.delete(check);
        resolve();
      };
      waiting.add(check);
      holder.once('exit', (code) => reject(new Error(`the fanotify holder ended (code ${code})`)));
      check();
    });
  await until(() => marked);
  return {
    opened: (count = 1) => until(() => opens >= count),
    async release() {
      holder.kill('SIGKILL');
      await exited;
    },
  };
}
