import { type Command, InvalidArgumentError, Option } from 'commander';
import { ValidationError } from '../core/errors.ts';
import { ISOLATE_PRESET, mergeIsolation, normalizeIsolation } from '../core/isolation.ts';
import type { JobIsolation } from '../core/job.ts';
import { collect } from './cli-context.ts';
import { UsageError } from './errors.ts';

/*
 * The options of `start` that ask for namespaces (docs/isolation.md, "Namespaces"). `--isolate` is
 * the usual set; the finer flags add to it or ask for one part alone. The server checks again and
 * refuses what its host cannot give.
 */

/** What commander collected for the isolation options. */
export interface IsolationOptions {
  isolate?: boolean;
  isolatePid?: boolean;
  network?: 'none' | 'host';
  privateTmp?: boolean;
  readOnly?: string[];
  hide?: string[];
  hostname?: string;
}

/** Adds `--isolate`, `--isolate-pid`, `--network`, `--private-tmp`, `--read-only`, `--hide`, `--hostname`. */
export function addIsolationOptions(command: Command): Command {
  return command
    .option('--isolate', 'run in namespaces of its own: its own processes (pid), /tmp and no network')
    .option('--isolate-pid', 'its own PID namespace: it sees only its own processes')
    .addOption(
      new Option(
        '--network <mode>',
        'none: its own network namespace with only loopback; host: the host network',
      ).choices(['none', 'host']),
    )
    .option('--private-tmp', 'an empty /tmp and /var/tmp of its own, gone when it ends')
    .option('--read-only <path>', 'an absolute path it can read but not write (repeatable)', collect)
    .option('--hide <path>', 'an absolute path whose content it cannot see (repeatable)', collect)
    .option('--hostname <name>', 'its own host name (a UTS namespace)');
}

/** The `isolation` of the request body, or undefined when no isolation option was given. */
export function isolationBody(options: IsolationOptions): JobIsolation | undefined {
  const own: Record<string, unknown> = {};
  if (options.isolatePid) own.pid = true;
  if (options.network !== undefined) own.network = options.network;
  const mount: Record<string, unknown> = {};
  if (options.privateTmp) mount.privateTmp = true;
  if (options.readOnly) mount.readOnly = options.readOnly;
  if (options.hide) mount.hide = options.hide;
  if (Object.keys(mount).length > 0) own.mount = mount;
  if (options.hostname !== undefined) own.hostname = options.hostname;
  if (!options.isolate && Object.keys(own).length === 0) return undefined;
  let checked: JobIsolation;
  try {
    checked = normalizeIsolation(own);
  } catch (err) {
    if (err instanceof ValidationError) throw new UsageError(`${flagOf(err.field)}: ${err.message}`);
    throw err;
  }
  if (!options.isolate) return explicitHost(checked, options);
  if (options.network === 'host') {
    // --isolate --network host: the preset but the host's network, asked for on purpose.
    const { network: _, ...preset } = ISOLATE_PRESET;
    return explicitHost(mergeIsolation(preset, checked) ?? {}, options);
  }
  return mergeIsolation(ISOLATE_PRESET, checked) ?? ISOLATE_PRESET;
}

/** `--network host` alone is sent as asked, so that a server default of `none` does not apply. */
function explicitHost(isolation: JobIsolation, options: IsolationOptions): JobIsolation {
  return options.network === 'host' ? { ...isolation, network: 'host' } : isolation;
}

function flagOf(field: string): string {
  if (field.includes('readOnly')) return '--read-only';
  if (field.includes('hide')) return '--hide';
  if (field.includes('hostname')) return '--hostname';
  return '--isolate';
}

/**
 * For commander parsers that take one isolation object as JSON (`queue set --isolation`). `none`
 * is the string `none` (commander would turn a null into ''): the caller sends null for it.
 */
export function parseIsolationJson(text: string): JobIsolation | 'none' {
  if (text.trim() === 'none') return 'none';
  if (text.trim() === 'isolate') return ISOLATE_PRESET;
  try {
    return normalizeIsolation(JSON.parse(text));
  } catch (err) {
    throw new InvalidArgumentError(
      err instanceof ValidationError
        ? err.message
        : `Expected isolate, none or the JSON of an isolation object, got ${JSON.stringify(text)}.`,
    );
  }
}
