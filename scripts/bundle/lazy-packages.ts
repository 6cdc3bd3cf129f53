/**
 * An esbuild plugin that moves some packages out of a bundle into bundles of their own beside
 * it, each loaded the first time one of its packages is. The server's bundle holds its whole text
 * in the heap for as long as the server runs (V8 keeps a script's source for the functions it
 * compiles on first call), and ~0.8 MB of it were packages only some servers ever load, each
 * imported by a module the server itself loads on first use: PostgreSQL's client (a cluster's
 * store), Connect and protobuf (the first RPC call), the X.509 stack (the certificate authority's
 * signer, loaded at its first signature: a TLS server's first start, a client certificate issued
 * or revoked, a renewal), prom-client (the first scrape), YAML (a tasks file in YAML),
 * @fastify/send (the dashboard's files). A group of packages that go together is one bundle.
 *
 * Each import of a listed package, or of a path inside it, becomes a stand-in that requires its
 * group's bundle and asks it for that import. The group's bundle holds every import of its
 * packages the first build saw (`lazyPackagesEntry`), so a module two of them share exists once.
 * The stand-in's `module.exports` is what `require` of the package gives inside the group's
 * bundle: a package with both builds gives its CommonJS one there, where the first bundle took its
 * ES module build (a name it lacks is then undefined at run time rather than a build error; tsc
 * still checks every name).
 *
 * Only for packages whose importers are all loaded on first use: a listed package imported by a
 * module the server loads at its start loads its group at the start (correct, only without the
 * saving; `npm run bench -- idle-memory` shows it). A running server needs the group bundles of
 * its build until it has loaded them: rebuild, then restart (docs/operations.md, "Upgrading").
 */
import type { BuildOptions, Plugin } from 'esbuild';

/** The namespace of the stand-ins in esbuild's metafile (`lazy-package:pg`): bundle-inputs.ts. */
export const LAZY_PACKAGE_NAMESPACE = 'lazy-package';

/** The listed packages' imports the first build saw, by the file of their group's bundle. */
export type LazyImports = ReadonlyMap<string, Set<string>>;

/**
 * The plugin for the first bundle. `groups`: each bundle's file name (in the same directory as the
 * first bundle, found from its `__dirname` at run time) and the packages it holds.
 */
export function lazyPackages(groups: Readonly<Record<string, readonly string[]>>): {
  plugin: Plugin;
  imports: LazyImports;
} {
  const imports = new Map<string, Set<string>>();
  const fileOf = new Map<string, string>();
  for (const [file, packages] of Object.entries(groups)) {
    imports.set(file, new Set());
    for (const name of packages) fileOf.set(name, file);
  }
  const escaped = [...fileOf.keys()].map((name) => name.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&'));
  const filter = new RegExp(`^(${escaped.join('|')})(/.*)?$`);
  const plugin: Plugin = {
    name: 'lazy-packages',
    setup(build) {
      build.onResolve({ filter }, (args) => {
        const name = filter.exec(args.path)![1]!;
        const file = fileOf.get(name)!;
        imports.get(file)!.add(args.path);
        return { path: `${file}:${args.path}`, namespace: LAZY_PACKAGE_NAMESPACE };
      });
      build.onLoad({ filter: /.*/, namespace: LAZY_PACKAGE_NAMESPACE }, (args) => {
        const at = args.path.indexOf(':');
        const file = args.path.slice(0, at);
        const specifier = args.path.slice(at + 1);
        return {
          contents: `// ${specifier}, from ${file} on first use (scripts/bundle/lazy-packages.ts).
module.exports = require(__dirname + ${JSON.stringify(`/${file}`)})(${JSON.stringify(specifier)});
`,
          loader: 'js',
        };
      });
    },
  };
  return { plugin, imports };
}

/**
 * The entry of the bundle `file` (one of the groups): a function that gives the package an import
 * names, each package required only when first asked for. `resolveDir`: where the packages are
 * resolved from.
 */
export function lazyPackagesEntry(
  imports: LazyImports,
  file: string,
  resolveDir: string,
): BuildOptions['stdin'] {
  const specifiers = imports.get(file);
  if (specifiers === undefined) throw new Error(`lazyPackagesEntry: no group ${file}`);
  const loaders = [...specifiers]
    .sort()
    .map((specifier) => `  ${JSON.stringify(specifier)}: () => require(${JSON.stringify(specifier)}),`);
  return {
    contents: `'use strict';
// Packages the server's bundle loads on first use (scripts/bundle/lazy-packages.ts).
const loaders = {
${loaders.join('\n')}
};
// One object per import, whatever asks: esbuild makes a new one at each require of an ES module.
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
