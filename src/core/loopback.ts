import { isIP } from 'node:net';
import { hostname } from 'node:os';

/**
 * True for an address or host name that stays on this machine: `localhost` (and `*.localhost`,
 * RFC 6761), 127.0.0.0/8, `::1` in any spelling, and IPv4-mapped 127.x (`::ffff:127.0.0.1`, how a
 * dual-stack socket reports an IPv4 loopback peer). The one judge of "loopback" for the server's
 * listen check, its tokenless route, and the refusal of plain HTTP elsewhere by the CLI and the
 * library client.
 */
export function isLoopbackHost(host: string): boolean {
  const bare = host.replace(/^\[(.*)\]$/, '$1');
  if (bare === 'localhost' || bare.endsWith('.localhost')) return true;
  if (isIP(bare) === 4) return bare.startsWith('127.');
  if (isIP(bare) === 6) {
    return /^(0{0,4}:){2,7}0{0,3}1$/.test(bare) || bare === '::1' || /^::ffff:127\./i.test(bare);
  }
  return false;
}

/**
 * Whether a request's `Host` names this machine: a loopback name or address, or this host's own
 * name (which Debian resolves to 127.0.1.1). A page of another site whose name was made to
 * resolve to 127.0.0.1 (DNS rebinding) is same-origin to the browser and comes from loopback, but
 * names its own host: the listeners that answer loopback callers without credentials (tokenless
 * `/run`, `--metrics-listen`) answer only requests that name this machine.
 */
export function namesThisMachine(host: string | undefined): boolean {
  if (host === undefined) return false;
  try {
    const name = new URL(`http://${host}`).hostname;
    return isLoopbackHost(name) || name === hostname().toLowerCase();
  } catch {
    return false;
  }
}
