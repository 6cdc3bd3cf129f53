import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { baseEnv, CliProcess } from '../cli/cli-harness.ts';
import { trustServerCa } from '../helpers/trust-server.ts';

/** One node of a test cluster: a real `jobworker serve` process on its own port and data directory. */
export interface TestNode {
  readonly id: string;
  readonly url: string;
  readonly dataDir: string;
  readonly token: string;
  readonly process: CliProcess;
  /** A REST call to this node as its admin; the body is parsed when it is JSON. */
  api<T = unknown>(method: string, path: string, body?: unknown): Promise<{ status: number; body: T }>;
}

/** What every node of one test cluster shares: the database and the cluster secret. */
export interface TestCluster {
  readonly storeUrl: string;
  readonly secretFile: string;
  /** Starts a node (`serve --json`) and resolves once it listens. */
  start(id: string, extra?: readonly string[]): Promise<TestNode>;
  /** Ends every node still running (SIGKILL: a test's jobs are stopped by the test) and removes their directories. */
  close(): Promise<void>;
}

export async function testCluster(
  storeUrl: string,
  /** `tls`: the nodes serve HTTPS with their own CAs (trusted by this process), not plain HTTP. */
  options: { nodeTimeout?: string; tls?: boolean } = {},
): Promise<TestCluster> {
  const root = await mkdtemp(join(tmpdir(), 'jw-cluster-'));
  const secretFile = join(root, 'cluster.secret');
  await writeFile(secretFile, `${randomBytes(32).toString('hex')}\n`, { mode: 0o600 });
  const nodes: TestNode[] = [];
  return {
    storeUrl,
    secretFile,
    async start(id, extra = []) {
      const dataDir = join(root, id);
      const args = [
        'serve',
        '--json',
        ...(options.tls === true ? [] : ['--insecure-http']),
        '--listen',
        '127.0.0.1:0',
        '--data-dir',
        dataDir,
        '--store',
        storeUrl,
        '--node-id',
        id,
        '--node-timeout',
        options.nodeTimeout ?? '30s',
        '--cluster-secret-file',
        secretFile,
        '--log-level',
        'warn',
        ...extra,
      ];
      const child = new CliProcess(args, baseEnv());
      const out = await child.waitUntil((text) => {
        try {
          JSON.parse(text);
          return true;
        } catch {
          return false;
        }
      }, 'where the server listens');
      const where = JSON.parse(out) as { url: string; adminTokenFile: string };
      const token = (await readFile(where.adminTokenFile, 'utf8')).trim();
      if (options.tls === true) trustServerCa(join(dataDir, 'tls', 'ca.pem'));
      const node: TestNode = {
        id,
        url: where.url,
        dataDir,
        token,
        process: child,
        async api<T>(method: string, path: string, body?: unknown) {
          const res = await fetch(new URL(path, `${where.url}/`), {
            method,
            headers: {
              authorization: `Bearer ${token}`,
              ...(body === undefined ? {} : { 'content-type': 'application/json' }),
            },
            ...(body === undefined ? {} : { body: JSON.stringify(body) }),
          });
          const text = await res.text();
          let parsed: unknown = text;
          if ((res.headers.get('content-type') ?? '').includes('json') && text !== '')
            parsed = JSON.parse(text);
          return { status: res.status, body: parsed as T };
        },
      };
      nodes.push(node);
      return node;
    },
    async close() {
      for (const node of nodes) {
        if (node.process.child.exitCode === null && node.process.child.signalCode === null) {
          node.process.child.kill('SIGKILL');
          await node.process.result();
        }
      }
      await rm(root, { recursive: true, force: true });
    },
  };
}
