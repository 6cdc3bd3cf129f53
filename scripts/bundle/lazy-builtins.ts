/**
 * An esbuild plugin that makes some of Node's built-in modules load on first use inside a bundle,
 * for the packages that require them at their top but need them only on some paths:
 *
 * - the CLI's bundle: commander requires `child_process` for stand-alone executable subcommands,
 *   which jobworker has none of; loading it (with net, dgram and their streams) cost every command
 *   several milliseconds.
 * - the server's bundle: Fastify requires `http2` and `https` at its top, and Connect's Node
 *   adapter `http2` and `https`, whatever the server serves. A server on plain HTTP (`--insecure-
 *   http`, or the bench's) never uses them nor `tls`: loaded, they held ~2.8 MB of its idle RSS
 *   (`npm run bench -- idle-memory`; docs/performance.md). With TLS they load as the server starts,
 *   as before.
 *
 * Each import of a listed module gets a stand-in: a Proxy whose first property read loads the real
 * module and reads from it. Its own keys are the module's export names as this Node has them at
 * build time, so that an `import * as` (which esbuild turns into a copy of each key as a getter)
 * copies getters without loading anything; a name that is not among them is still read from the
 * real module. Only modules whose exports are a plain object qualify (a callable one, like
 * `assert`, cannot be stood in for by a Proxy of an object): asking for another fails the build.
 */
import type { Plugin } from 'esbuild';

const NAMESPACE = 'lazy-builtin';

export function lazyBuiltins(names: readonly string[]): Plugin {
  const wanted = new Set(names);
  for (const name of wanted) {
    const exports: unknown = process.getBuiltinModule(`node:${name}`);
    if (exports === undefined || typeof exports !== 'object' || exports === null) {
      throw new Error(`lazyBuiltins: node:${name} is not a built-in module whose exports are an object`);
    }
  }
  return {
    name: 'lazy-builtins',
    setup(build) {
      build.onResolve({ filter: /^(node:)?[a-z_0-9/]+$/ }, (args) => {
        const name = args.path.replace(/^node:/, '');
        return wanted.has(name) ? { path: name, namespace: NAMESPACE } : undefined;
      });
      build.onLoad({ filter: /.*/, namespace: NAMESPACE }, (args) => ({
        contents: standIn(args.path),
        loader: 'js',
      }));
    },
  };
}

/** The stand-in's CommonJS source for `node:<name>`. */
function standIn(name: string): string {
  const keys = Object.keys(process.getBuiltinModule(`node:${name}`) as object);
  const id = JSON.stringify(`node:${name}`);
  return `'use strict';
// node:${name}, loaded on first use (scripts/bundle/lazy-builtins.ts).
let loaded;
const load = () => (loaded ??= process.getBuiltinModule(${id}));
const keys = ${JSON.stringify(keys)};
module.exports = new Proxy({}, {
  // esbuild asks whether a CommonJS module was compiled from ESM; a built-in never was.
  get: (_target, key) => (key === '__esModule' ? undefined : load()[key]),
  set: (_target, key, value) => { load()[key] = value; return true; },
  has: (_target, key) => key in load(),
  ownKeys: () => [...keys],
  getOwnPropertyDescriptor: (_target, key) =>
    keys.includes(key) ? { configurable: true, enumerable: true, get: () => load()[key] } : undefined,
});
`;
}
