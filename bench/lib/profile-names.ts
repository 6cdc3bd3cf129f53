/**
 * Names for the frames of V8 profiles (CPU and allocation sampling): the repository's files from
 * its root, packages by their node_modules name, Node's built-ins together.
 */
import { dirname } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

/** The repository's root as profiles name it (`file:///.../`), to name its files from there. */
const ROOT = pathToFileURL(`${dirname(dirname(dirname(fileURLToPath(import.meta.url))))}/`).href;

/** A stack frame's place: `pkg` for node_modules, `node:` built-ins, the repository's folders. */
export function packageOf(url: string): string {
  if (url === '') return '(native)';
  if (url.startsWith('node:')) return 'node: built-ins';
  const modules = url.lastIndexOf('node_modules/');
  if (modules !== -1) {
    const [scope, name] = url.slice(modules + 'node_modules/'.length).split('/');
    return scope?.startsWith('@') ? `${scope}/${name}` : (scope ?? url);
  }
  if (url.startsWith(ROOT)) return url.slice(ROOT.length).split('/').slice(0, 2).join('/');
  return url.replace(/^file:\/\//, '');
}

export function fileOf(url: string): string {
  const modules = url.lastIndexOf('node_modules/');
  if (modules !== -1) return url.slice(modules + 'node_modules/'.length);
  if (url.startsWith(ROOT)) return url.slice(ROOT.length);
  return url || '(native)';
}
