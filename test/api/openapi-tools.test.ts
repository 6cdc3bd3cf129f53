import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, realpath, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import ts from 'typescript';
import { type Harness, openHarness } from '../helpers/engine-harness.ts';
import { type AppHarness, openApp } from '../helpers/rest-app-harness.ts';

const run = promisify(execFile);

/** A tool's command-line script, as `node_modules/.bin` links it, run by this Node. */
async function bin(name: string): Promise<string> {
  return realpath(new URL(`../../node_modules/.bin/${name}`, import.meta.url));
}

/** Nothing leaves the machine: no telemetry, no update check. */
const QUIET_ENV = { ...process.env, REDOCLY_TELEMETRY: 'off', REDOCLY_SUPPRESS_UPDATE_NOTICE: 'true' };

/**
 * The one exception to Redocly's recommended rules, in Redocly's own ignore file: `GET /healthz`
 * has no 4xx response because it cannot give one (no credentials, no parameters, no body), and
 * documenting one it never sends would make the document lie.
 */
const LINT_IGNORE = `openapi.json:
  operation-4xx-response:
    - '#/paths/~1healthz/get/responses'
`;

/**
 * A small client written against the types openapi-typescript generates: it must compile, and
 * the typed query parameters must be what they are (an integer `limit`, a boolean `follow`).
 */
const CLIENT = `import type { components, paths } from './jobworker-api.ts';

type Job = components['schemas']['Job'];
type ApiError = components['schemas']['Error'];
type JobSpec = paths['/v1/jobs']['post']['requestBody']['content']['application/json'];
type ListQuery = NonNullable<paths['/v1/jobs']['get']['parameters']['query']>;
type OutputQuery = NonNullable<paths['/v1/jobs/{id}/output']['get']['parameters']['query']>;
type ListPage = paths['/v1/jobs']['get']['responses']['200']['content']['application/json'];

function query(params: Record<string, string | number | boolean | undefined>): string {
  const entries = Object.entries(params).filter((e): e is [string, string | number | boolean] => e[1] !== undefined);
  return new URLSearchParams(entries.map(([k, v]) => [k, String(v)])).toString();
}

export class Client {
  constructor(private readonly base: string, private readonly token: string) {}

  async #call<T>(method: string, path: string, body?: unknown): Promise<T> {
    const res = await fetch(this.base + path, {
      method,
      headers: { authorization: 'Bearer ' + this.token, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    if (!res.ok) throw new Error(((await res.json()) as ApiError).error.code);
    return (await res.json()) as T;
  }

  start(spec: JobSpec): Promise<Job> {
    return this.#call('POST', '/v1/jobs', spec);
  }

  list(params: ListQuery): Promise<ListPage> {
    return this.#call('GET', '/v1/jobs?' + query(params));
  }

  outputUrl(id: string, params: OutputQuery): string {
    return this.base + '/v1/jobs/' + encodeURIComponent(id) + '/output?' + query(params);
  }
}

export const firstPage: ListQuery = { limit: 5, status: 'running' };
export const following: OutputQuery = { follow: true, stream: 'stdout' };
export const status: Job['status'] = 'succeeded';
// @ts-expect-error: \`limit\` is an integer, not text.
export const textLimit: ListQuery = { limit: '5' };
// @ts-expect-error: \`follow\` is a boolean.
export const textFollow: OutputQuery = { follow: 'true' };
// @ts-expect-error: \`stream\` is one of the views.
export const badView: OutputQuery = { stream: 'stdin' };
`;

describe('the OpenAPI document, with the tools people point at it', () => {
  let h: Harness;
  let a: AppHarness;
  let dir: string;
  let document: {
    servers?: unknown[];
    info: { license?: unknown };
    paths: Record<string, Record<string, { operationId?: string; responses: Record<string, unknown> }>>;
  };

  before(async () => {
    h = await openHarness();
    a = await openApp(h);
    const token = await a.issue('admin', 'admin');
    const res = await a.app.inject({
      url: '/v1/openapi.json',
      headers: { authorization: `Bearer ${token}` },
    });
    assert.equal(res.statusCode, 200);
    document = res.json();
    dir = await mkdtemp(join(tmpdir(), 'jw-openapi-'));
    await writeFile(join(dir, 'openapi.json'), res.body);
  });
  after(async () => {
    await a.close();
    await h.destroy();
    await rm(dir, { recursive: true, force: true });
  });

  it('names every operation, its servers and license, and gives every route a 2xx', () => {
    assert.ok(document.servers?.length);
    assert.ok(document.info.license);
    const ids = new Set<string>();
    for (const [path, methods] of Object.entries(document.paths)) {
      for (const [method, operation] of Object.entries(methods)) {
        assert.ok(operation.operationId, `${method} ${path}`);
        assert.ok(!ids.has(operation.operationId), `${operation.operationId} is unique`);
        ids.add(operation.operationId);
        assert.ok(
          Object.keys(operation.responses).some((status) => status.startsWith('2')),
          `${method} ${path}`,
        );
      }
    }
    const created = document.paths['/v1/jobs']?.post?.responses['409'] as { description: string };
    assert.match(created.description, /^DUPLICATE/);
  });

  it('passes `redocly lint` with its recommended rules', async () => {
    await writeFile(join(dir, '.redocly.lint-ignore.yaml'), LINT_IGNORE);
    const { stdout } = await run(
      process.execPath,
      [await bin('redocly'), 'lint', '--extends', 'recommended', '--format', 'json', 'openapi.json'],
      { cwd: dir, env: QUIET_ENV },
    );
    const report = JSON.parse(stdout) as { totals: Record<string, number>; problems: unknown[] };
    assert.deepEqual(report.problems, []);
    assert.deepEqual(report.totals, { errors: 0, warnings: 0, ignored: 1 });
  });

  it('generates types with openapi-typescript that a small client compiles against', async () => {
    await run(process.execPath, [await bin('openapi-typescript'), 'openapi.json', '-o', 'jobworker-api.ts'], {
      cwd: dir,
      env: QUIET_ENV,
    });
    const generated = await readFile(join(dir, 'jobworker-api.ts'), 'utf8');
    assert.match(generated, /limit\?: number/);
    assert.match(generated, /follow\?: boolean/);
    const client = join(dir, 'client.ts');
    await writeFile(client, CLIENT);
    const program = ts.createProgram([client], {
      strict: true,
      noEmit: true,
      target: ts.ScriptTarget.ES2024,
      module: ts.ModuleKind.NodeNext,
      moduleResolution: ts.ModuleResolutionKind.NodeNext,
      allowImportingTsExtensions: true,
      lib: ['lib.es2024.d.ts', 'lib.dom.d.ts'],
      types: [],
    });
    const diagnostics = ts
      .getPreEmitDiagnostics(program)
      .map((d) => ts.flattenDiagnosticMessageText(d.messageText, '\n'));
    assert.deepEqual(diagnostics, []);
  });
});
