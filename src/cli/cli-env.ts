import { homedir } from 'node:os';
import { join } from 'node:path';

/** What the CLI takes from its environment. This module is the CLI's only reader of `process.env`. */
export interface CliEnvironment {
  /** `JOBWORKER_URL`: the server to talk to. */
  readonly url: string | undefined;
  /** `JOBWORKER_TOKEN`: a bearer token; wins over the local admin token file. */
  readonly token: string | undefined;
  /** `JOBWORKER_CA`: the CA file that verifies the server. */
  readonly ca: string | undefined;
  /** `JOBWORKER_CERT`, `JOBWORKER_KEY`: a client certificate and its key (PEM files). */
  readonly cert: string | undefined;
  readonly key: string | undefined;
  /** The data directory of a local server, where its `admin.token` is. */
  readonly dataDir: string;
  /** True when `JOBWORKER_DATA_DIR` named the data directory (so `serve` passes it on). */
  readonly dataDirFromEnv: boolean;
  /** `NO_COLOR` set to a non-empty value (https://no-color.org). */
  readonly noColor: boolean;
  /** `JOBWORKER_RECONNECT_FOR`: how long a follower keeps reconnecting (a duration; checked where used). */
  readonly reconnectFor: string | undefined;
  /** The whole environment, for `start --env NAME` (copy a variable from here). */
  readonly variables: Readonly<Record<string, string | undefined>>;
}

export const DEFAULT_SERVER_URL = 'https://127.0.0.1:8080';

export function readCliEnvironment(env: NodeJS.ProcessEnv = process.env): CliEnvironment {
  const nonEmpty = (name: string) => {
    const value = env[name];
    return value === undefined || value === '' ? undefined : value;
  };
  const explicitDataDir = nonEmpty('JOBWORKER_DATA_DIR');
  const dataHome = nonEmpty('XDG_DATA_HOME') ?? join(nonEmpty('HOME') ?? homedir(), '.local', 'share');
  return {
    url: nonEmpty('JOBWORKER_URL'),
    token: nonEmpty('JOBWORKER_TOKEN'),
    ca: nonEmpty('JOBWORKER_CA'),
    cert: nonEmpty('JOBWORKER_CERT'),
    key: nonEmpty('JOBWORKER_KEY'),
    dataDir: explicitDataDir ?? join(dataHome, 'jobworker'),
    dataDirFromEnv: explicitDataDir !== undefined,
    noColor: nonEmpty('NO_COLOR') !== undefined,
    reconnectFor: nonEmpty('JOBWORKER_RECONNECT_FOR'),
    variables: env,
  };
}
