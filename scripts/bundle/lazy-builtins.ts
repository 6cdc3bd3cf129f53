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
 * Each import of a listed module gets a stand-in: a Proxy whose first use (a property read, write,
 * definition or deletion, an `in`) loads the real module and acts on it. Its own keys are the
 * module's export names as the Node that built the bundle has them, so that an `import * as`
 * (which esbuild turns into a copy of each key as a getter) copies getters without loading
 * anything. A `require` or default import of the stand-in reads any name from the real module;
 * a named or `import * as` import sees only the names of the build's Node (the bundle is built by
 * the Node it runs on: scripts/build.sh, run by setup and by every test run). Only modules whose
 * exports are a plain object qualify (a callable one, like `assert`, cannot be stood in for by a
 * Proxy of an object): asking for another fails the build.
 */
import type { Plugin } from 'esbuild';

/** The namespace of the stand-ins in esbuild's metafile (`lazy-builtin:http2`): bundle-inputs.ts. */
export const LAZY_BUILTIN_NAMESPACE = 'lazy-builtin';

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
      const filter = new RegExp(`^(node:)?(${[...wanted].join('|')})$`);
      build.onResolve({ filter }, (args) => ({
        path: args.path.replace(/^node:/, ''),
        namespace: LAZY_BUILTIN_NAMESPACE,
      }));
      build.onLoad({ filter: /.*/, namespace: LAZY_BUILTIN_NAMESPACE }, (args) => ({
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
  // Never on the empty target, which the stand-in's keys do not come from (a non-configurable
  // property still cannot be defined through it: a Proxy's invariants forbid that).
  defineProperty: (_target, key, descriptor) => Reflect.defineProperty(load(), key, descriptor),
  deleteProperty: (_target, key) => Reflect.deleteProperty(load(), key),
  ownKeys: () => [...keys],
  getOwnPropertyDescriptor: (_target, key) =>
    keys.includes(key) ? { configurable: true, enumerable: true, get: () => load()[key] } : undefined,
});
`;
}
