import { readFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { getCACertificates, setDefaultCACertificates } from 'node:tls';

const trusted = new Set<string>();

/**
 * Adds a test server's CA (`<data-dir>/tls/ca.pem`) to the CAs this process's TLS clients
 * (fetch, node:https) trust by default, so tests reach the server over real, verified TLS.
 */
export function trustServerCa(caFile: string | null): void {
  if (caFile === null) return;
  const pem = readFileSync(caFile, 'utf8');
  if (trusted.has(pem)) return;
  trusted.add(pem);
  setDefaultCACertificates([...getCACertificates('default'), ...trusted]);
}

/** node:https's `request` for an https:// URL, node:http's for http://. */
export function requestFor(url: string | URL): typeof httpRequest {
  return (String(url).startsWith('https:') ? httpsRequest : httpRequest) as typeof httpRequest;
}
