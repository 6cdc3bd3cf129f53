import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdir, mkdtemp, readFile, rm, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { LAUNCHER, REPO } from '../cli/cli-harness.ts';

/**
 * Runs every example of docs/compat.md against real servers started by the doc's own `sh server`
 * blocks, through the installed names (jobworker, workerctl, worker-cli) and curl. The rules the
 * doc states: `localhost:8080` becomes the server's port, `<jobID>`/`<jobId>` the last job id an
 * earlier line printed; in a `text output` block `<...>` is any text within a line and a line
 * `...` any lines.
 */

interface Block {
  readonly info: string;
  readonly text: string;
}

const UUID = /[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[0-9a-f]{4}-[0-9a-f]{12}/g;

function blocks(markdown: string): Block[] {
  return [...markdown.matchAll(/^```([^\n]*)\n([\s\S]*?)^```$/gm)].map((m) => ({
    info: m[1]!.trim(),
    text: m[2]!,
  }));
}

/** The expected output as a regular expression over the whole stdout of a block. */
function expectation(text: string): RegExp {
  const literal = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  const lines = text.replace(/\n$/, '').split('\n');
  const source = lines
    .map((line) =>
      line === '...'
        ? '(?:[^\\n]*\\n)*?'
        : `${literal(line)
            .replaceAll(literal('<...>'), '[^\\n]*')
            .replaceAll(literal('<jobID>'), UUID.source)
            .replaceAll(literal('<jobId>'), UUID.source)}\\n`,
    )
    .join('');
  return new RegExp(`^${source}$`);
}

interface Server {
  readonly child: ChildProcess;
  readonly port: string;
  readonly env: NodeJS.ProcessEnv;
}

describe('docs/compat.md: every example, run as written', async () => {
  const doc = blocks(await readFile(join(REPO, 'docs/compat.md'), 'utf8'));
  const servers = new Map<string, Server>();
  let scratch: string;
  let bin: string;
  let lastId: string | undefined;
  /** The stderr of the current example's lines, shown when it fails. */
  let lines: string[] = [];

  async function startServer(name: string, line: string): Promise<Server> {
    const dataDir = join(scratch, `data-${name}`);
    const env: NodeJS.ProcessEnv = {
      PATH: `${bin}:${process.env.PATH}`,
      HOME: scratch,
      LANG: 'C.UTF-8',
      JOBWORKER_DATA_DIR: dataDir,
      JOBWORKER_ADMIN_RUN_AS: 'root',
      JOBWORKER_HOMES_DIR: join(scratch, `homes-${name}`),
    };
    // The starter's server runs where its README.md is: `/run` reads it from there.
    const cwd = name === 'starter' ? join(REPO, 'test/fixtures/take-home') : scratch;
    const child = spawn('bash', ['-c', `exec ${line} --listen 127.0.0.1:0 --json`], {
      cwd,
      env,
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    let out = '';
    child.stdout!.setEncoding('utf8');
    while (!out.includes('}')) {
      const [chunk] = (await once(child.stdout!, 'data')) as [string];
      out += chunk;
    }
    const where = JSON.parse(out) as { url: string; caFile: string | null; adminTokenFile: string };
    const port = new URL(where.url).port;
    return {
      child,
      port,
      env: {
        PATH: env.PATH,
        HOME: scratch,
        LANG: 'C.UTF-8',
        JOBWORKER_DATA_DIR: join(scratch, 'no-local-server'),
        ...(where.caFile
          ? {
              JOBWORKER_CA: where.caFile,
              JOBWORKER_TOKEN: (await readFile(where.adminTokenFile, 'utf8')).trim(),
              JOBWORKER_URL: `https://localhost:${port}`,
            }
          : {}),
      },
    };
  }

  async function runLine(server: Server, line: string): Promise<string> {
    const command = line
      .replaceAll('localhost:8080', `localhost:${server.port}`)
      .replace(/<job(ID|Id)>/g, () => lastId ?? '<no job id yet>');
    const child = spawn('bash', ['-c', command], {
      cwd: scratch,
      env: server.env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (s: string) => (stdout += s));
    child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
    await once(child, 'close');
    const ids = stdout.match(UUID);
    if (ids) lastId = ids.at(-1);
    // What went wrong, should the comparison fail: stderr is not compared (curl's progress meter).
    if (stderr !== '') lines.push(`$ ${command}\n${stderr}`);
    return stdout;
  }

  before(async () => {
    scratch = await mkdtemp(join(tmpdir(), 'jw-compat-docs-'));
    bin = join(scratch, 'bin');
    await mkdir(bin);
    for (const name of ['jobworker', 'workerctl', 'worker-cli']) await symlink(LAUNCHER, join(bin, name));
  });
  after(async () => {
    for (const { child } of servers.values()) {
      child.kill('SIGTERM');
      if (child.exitCode === null) await once(child, 'exit');
    }
    await rm(scratch, { recursive: true, force: true, maxRetries: 10 });
  });

  it('has examples for each design, each followed by its output', () => {
    const examples = doc.filter((b) => b.info.startsWith('sh example='));
    assert.ok(examples.length >= 10);
    for (const [i, b] of doc.entries()) {
      if (b.info.startsWith('sh example=')) assert.equal(doc[i + 1]?.info, 'text output', b.text);
    }
    assert.deepEqual(
      doc.filter((b) => b.info.startsWith('sh') && !/^sh (example|server)=/.test(b.info)),
      [],
      'every shell block is a server or an example',
    );
  });

  it('runs each example in order and prints what the doc says', async () => {
    for (const [i, b] of doc.entries()) {
      const server = /^sh server=(\S+)$/.exec(b.info);
      if (server) {
        servers.set(server[1]!, await startServer(server[1]!, b.text.trim()));
        continue;
      }
      const example = /^sh example=(\S+)$/.exec(b.info);
      if (!example) continue;
      const target = servers.get(example[1]!);
      assert.ok(target, `server ${example[1]} is started by a block before its examples`);
      let stdout = '';
      lines = [];
      for (const line of b.text.split('\n').filter((l) => l.trim() !== '' && !l.startsWith('#'))) {
        const out = await runLine(target, line);
        stdout += out.endsWith('\n') || out === '' ? out : `${out}\n`;
      }
      assert.match(
        stdout,
        expectation(doc[i + 1]!.text),
        `the example:\n${b.text}\nstderr:\n${lines.join('\n')}`,
      );
    }
  });
});
