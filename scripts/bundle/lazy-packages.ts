/**
 * An esbuild plugin that moves some packages out of a bundle into a second bundle beside it,
 * loaded the first time one of them is: the server's bundle holds its whole text in the heap as
 * long as the server runs (V8 keeps a script's source for the functions it compiles on first
 * call), and ~0.8 MB of it were packages only some servers ever load, each imported by a module
 * that the server itself loads on first use: PostgreSQL's client (a cluster's store), Connect and
 * protobuf (the first RPC call), the X.509 stack (the certificate authority, with TLS),
 * prom-client (the first scrape), YAML (a tasks file in YAML), @fastify/send (the dashboard).
 *
 * Each import of a listed package, or of a path inside it, becomes a stand-in that requires the
 * second bundle and asks it for that import: the second bundle holds every listed package (built
 * by `lazyPackagesBundle` from the imports the first build saw), so a package two of them share
 * exists once, as in one bundle. The stand-in's `module.exports` is what `require` of the package
 * gives, so esbuild's interop in the first bundle treats it as it treated the package itself. In
 * the second bundle each package is taken by `require`, so a package with both builds gives its
 * CommonJS one.
 *
 * Only for packages whose importers are all loaded on first use: a listed package imported by a
 * module the server loads at its start loads the second bundle at the start too (correct, only
 * without the saving; `npm run bench -- idle-memory` shows it).
 */
import type { BuildOptions, Plugin } from 'esbuild';

/** The namespace of the stand-ins in esbuild's metafile (`lazy-package:pg`): bundle-inputs.ts. */
export const LAZY_PACKAGE_NAMESPACE = 'lazy-package';

/** The listed packages' imports the first build saw, for `lazyPackagesBundle`. */
export interface LazyImports {
  readonly specifiers: Set<string>;
}

/**
 * The plugin for the first bundle. `file`: the second bundle's file name, in the same directory
 * as the first (found from the first's `__dirname` at run time).
 */
export function lazyPackages(
  packages: readonly string[],
  file: string,
): { plugin: Plugin; imports: LazyImports } {
  const imports: LazyImports = { specifiers: new Set() };
  const escaped = packages.map((name) => name.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&'));
  const filter = new RegExp(`^(${escaped.join('|')})(/.*)?$`);
  const plugin: Plugin = {
    name: 'lazy-packages',
    setup(build) {
      build.onResolve({ filter }, (args) => {
        imports.specifiers.add(args.path);
        return { path: args.path, namespace: LAZY_PACKAGE_NAMESPACE };
      });
      build.onLoad({ filter: /.*/, namespace: LAZY_PACKAGE_NAMESPACE }, (args) => ({
        contents: `// ${args.path}, from ${file} on first use (scripts/bundle/lazy-packages.ts).
module.exports = require(__dirname + ${JSON.stringify(`/${file}`)})(${JSON.stringify(args.path)});
`,
        loader: 'js',
      }));
    },
  };
  return { plugin, imports };
}

/**
 * The second bundle's entry: one function that gives the package an import names, each package
 * required only when first asked for. `resolveDir`: where the packages are resolved from.
 */
export function lazyPackagesEntry(imports: LazyImports, resolveDir: string): BuildOptions['stdin'] {
  const loaders = [...imports.specifiers]
    .sort()
    .map((specifier) => `  ${JSON.stringify(specifier)}: () => require(${JSON.stringify(specifier)}),`);
  return {
    contents: `'use strict';
// The packages the server's bundle loads on first use (scripts/bundle/lazy-packages.ts).
const loaders = {
${loaders.join('\n')}
};
const loaded = new Map();
module.exports = (specifier) => {
  if (!loaded.has(specifier)) {
    const load = loaders[specifier];
    if (load === undefined) throw new Error('No package ' + specifier + ' in this bundle');
    loaded.set(specifier, load());
  }
  return loaded.get(specifier);
};
`,
    resolveDir,
    loader: 'js',
  };
}
