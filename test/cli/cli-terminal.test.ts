import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { ApiJob } from '../../src/client/api-types.ts';
import { CLI_MAIN, jobworker, jobworkerJson, startTestServer, type TestServer } from './cli-harness.ts';

const ESC = '\x1b';
let t: TestServer;
before(async () => {
  t = await startTestServer();
});
after(() => t.close());

/** Runs the CLI with its stdout and stderr on a pseudo-terminal, through util-linux script(1). */
async function onTerminal(args: readonly string[], env: NodeJS.ProcessEnv) {
  const quote = (word: string) => `'${word.replaceAll("'", `'\\''`)}'`;
  const line = [process.execPath, CLI_MAIN, ...args].map(quote).join(' ');
  const child = spawn('script', ['-qefc', `stty cols 200; ${line}`, '/dev/null'], {
    env,
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let output = '';
  child.stdout.setEncoding('utf8').on('data', (text: string) => {
    output += text;
  });
  const [code] = (await once(child, 'close')) as [number];
  // The terminal turns each \n into \r\n.
  return { code, output: output.replaceAll('\r\n', '\n') };
}

describe('output on a terminal', () => {
  let id: string;
  const printed = `title${ESC}]0;pwned\x07 clip${ESC}]52;c;Y3VybCBldmlsfHNo\x07 ${ESC}[2J${ESC}[31mred${ESC}[0m\n`;
  before(async () => {
    const job = await jobworkerJson<ApiJob>(
      ['start', '--', 'printf', '%b', printed.replaceAll(ESC, '\\033')],
      t.env,
    );
    id = job.id;
    const raw = await jobworker(['logs', '-f', id], t.env);
    assert.equal(raw.stdout, printed, 'to a pipe, bytes pass exactly');
  });

  it('has title, clipboard and other non-SGR sequences removed, colours kept', async () => {
    const { code, output } = await onTerminal(['logs', id], t.env);
    assert.equal(code, 0);
    assert.equal(output, `title clip ${ESC}[31mred${ESC}[0m\n`);
  });

  it('keeps every sequence with --raw', async () => {
    const { code, output } = await onTerminal(['logs', '--raw', id], t.env);
    assert.equal(code, 0);
    assert.equal(output, printed);
  });

  it('shows status in colour, except with NO_COLOR', async () => {
    const coloured = await onTerminal(['status', id], t.env);
    assert.match(coloured.output, new RegExp(`Status.*${ESC}\\[32msucceeded${ESC}\\[0m`));
    const plain = await onTerminal(['status', id], { ...t.env, NO_COLOR: '1' });
    assert.ok(!plain.output.includes(ESC), plain.output);
    assert.match(plain.output, /Status +succeeded/);
  });

  it('fits the list table to the terminal width', async () => {
    const long = `echo ${'x'.repeat(300)}`;
    await jobworker(['start', '-f', long], t.env);
    const { output } = await onTerminal(['list'], { ...t.env, NO_COLOR: '1' });
    const lines = output.trimEnd().split('\n');
    assert.ok(lines.length >= 2);
    for (const line of lines) assert.ok([...line].length <= 200, `${[...line].length}: ${line}`);
    assert.ok(lines[1]!.endsWith('…'));
  });

  it('prints, when there are more jobs, the command for the next page with the same filters', async () => {
    for (const word of ['one', 'two'])
      await jobworker(['start', '--name', "it's paged", '--', 'true', word], t.env);
    const { output } = await onTerminal(['list', '--name', "it's paged", '--limit', '1'], {
      ...t.env,
      NO_COLOR: '1',
    });
    const more = /^More: jobworker (list .*)$/m.exec(output);
    assert.ok(more, output);
    assert.match(more[1]!, /^list --name 'it'\\''s paged' --limit 1 --cursor \S+$/);
    // What a shell reads it as: the second page of the same list.
    const next = await onTerminal(
      ['list', '--name', "it's paged", '--limit', '1', '--cursor', more[1]!.split(' ').at(-1)!],
      { ...t.env, NO_COLOR: '1' },
    );
    assert.match(next.output, /true one/);
    assert.doesNotMatch(next.output, /true two/);
  });
});

describe('--json output', () => {
  it('writes DEL and C1 controls as \\u escapes: the same JSON, nothing a terminal acts on', async () => {
    // U+009D is OSC and U+009C ST as C1 code points: OSC 52 writes the clipboard.
    const arg = '\u009d52;c;Y3VybCBldmlsfHNo\u009c \u009b2J \u007f';
    const job = await jobworkerJson<ApiJob>(['start', '--label', `k=${arg}`, '--', 'echo', arg], t.env);
    const { stdout, code } = await jobworker(['list', '--json', '--label', `k=${arg}`], t.env);
    assert.equal(code, 0);
    assert.doesNotMatch(stdout, /[\u007f-\u009f]/, 'no raw DEL or C1 control');
    assert.match(stdout, /\\u009d52;c;/);
    const listed = (JSON.parse(stdout) as { jobs: ApiJob[] }).jobs;
    assert.deepEqual(
      listed.map((j) => [j.id, j.args, j.labels]),
      [[job.id, [arg], { k: arg }]],
    );
  });
});

describe('start -f of a job that never ran, on a terminal', () => {
  it('says why it failed: its exit status alone does not', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'jw-badinterp-'));
    const script = join(dir, 'script');
    try {
      // Executable by its mode bits, so the preflight passes; exec fails: its interpreter is missing.
      await writeFile(script, '#!/nonexistent/interpreter\n', { mode: 0o755 });
      const { code, output } = await onTerminal(['start', '-f', '--', script], t.env);
      assert.equal(code, 127);
      assert.match(output, /jobworker: job [0-9a-f-]{36} failed: command not found: \S+\/script/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
