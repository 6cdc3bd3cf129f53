import { isIP } from 'node:net';

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
