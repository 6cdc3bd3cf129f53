import ipaddr from 'ipaddr.js';

/**
 * The block of addresses that one party is taken to hold, for the failed-authentication limit:
 * an IPv4 address alone, and for IPv6 its /64. A host on IPv6 is routinely given a whole /64
 * (SLAAC and privacy extensions make it a new address whenever it likes), so a limit per IPv6
 * address is no limit: a guesser would take a fresh address every few attempts, and its fresh
 * entries would push every other address's count out of the limiter's bounded memory. An
 * IPv4-mapped IPv6 address (`::ffff:10.0.0.1`, how a dual-stack socket names an IPv4 peer) is its
 * IPv4 address. Anything that is not an IP address (`local`, the Unix socket) is its own block.
 * ipaddr.js is what Fastify's proxy-addr parses addresses with; it is in the tree already.
 */
export function addressBlock(address: string): string {
  if (!ipaddr.isValid(address)) return address;
  const ip = ipaddr.process(address);
  if (ip.kind() === 'ipv4') return ip.toString();
  // The first four of the eight 16-bit groups; the zone (`%eth0`) is not part of the block.
  const parts = (ip as ipaddr.IPv6).parts.slice(0, 4);
  return `${new ipaddr.IPv6([...parts, 0, 0, 0, 0]).toString()}/64`;
}
