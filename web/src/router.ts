import { useEffect, useState } from 'preact/hooks';

/**
 * Routes live in the URL's fragment (`#/jobs/<id>`): the server serves one page, and nothing the
 * dashboard puts in a URL is a secret (a token never is).
 */
export function useRoute(): string[] {
  const [hash, setHash] = useState(location.hash);
  useEffect(() => {
    const onChange = () => setHash(location.hash);
    addEventListener('hashchange', onChange);
    return () => removeEventListener('hashchange', onChange);
  }, []);
  const path = hash.replace(/^#\/?/, '').split('?')[0] ?? '';
  return path === '' ? ['jobs'] : path.split('/').map(decodePart);
}

/** A part as typed or pasted: a malformed escape (`%zz`) is kept as it is, not a blank page. */
function decodePart(part: string): string {
  try {
    return decodeURIComponent(part);
  } catch {
    return part;
  }
}

export function go(path: string): void {
  location.hash = `#/${path}`;
}
