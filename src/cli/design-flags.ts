import { UsageError } from './errors.ts';

/**
 * The Job Worker design's milestone-5 client flags, which jobworker does not keep (its own docopt
 * grammar, kept, has commands for them: docs/compat.md), and what to type instead. `--status`
 * already means a filter of `list`, and `--health` has no command to be an alias of.
 */
const INSTEAD: Readonly<Record<string, string>> = {
  '--health':
    '`curl --cacert CA https://HOST:PORT/health/` (no command: any command, such as `list --limit 1`, shows that the server answers)',
  '--start': '`start -- COMMAND [ARGS...]`',
  '--stop': '`stop JOB`',
  '--status': '`status JOB`',
};

/** Throws a usage error saying what to use when `option`, met before any command, is one of them. */
export function refuseDesignFlag(option: string | undefined): void {
  const flag = option?.split('=', 1)[0];
  const instead = flag === undefined ? undefined : INSTEAD[flag];
  if (flag !== undefined && instead !== undefined) {
    throw new UsageError(
      `${flag} is the Job Worker design's flag, not kept here: use ${instead} (docs/compat.md)`,
    );
  }
}
