import ipaddr from 'ipaddr.js';

/**
 * The block of addresses that one party is taken to hold, for the failed-authentication limit:
 * an IPv4 address alone, and for IPv6 its /64. A host on IPv6 may take any address of its
 * network's /64 at will (SLAAC with privacy extensions makes new ones), so a limit per IPv6
 * address is no limit: a guesser would take a fresh address every few attempts, and its fresh
 * entries would push every other address's count out of the limiter's bounded memory. An
 * IPv4-mapped IPv6 address (`::ffff:10.0.0.1`, how a dual-stack socket names an IPv4 peer) is its
 * IPv4 address. A link-local address keeps its zone (`fe80::/64%eth0`): each interface's link is
 * a network of its own. Anything that is not an IP address (`local`, the Unix socket) is its own
 * block. ipaddr.js is what Fastify's proxy-addr parses addresses with; it is in the tree already.
 */
export function addressBlock(address: string): string {
  // Node names a link-local peer with its interface (`%br-lan`, `%eth0.100`), in forms ipaddr.js
  // does not take: the zone is split off first.
  const cut = address.indexOf('%');
  const bare = cut === -1 ? address : address.slice(0, cut);
  const zone = cut === -1 ? '' : address.slice(cut);
  if (!ipaddr.isValid(bare)) return address;
  const ip = ipaddr.process(bare);
  if (ip.kind() === 'ipv4') return ip.toString();
  const parts = (ip as ipaddr.IPv6).parts.slice(0, 4);
  return `${new ipaddr.IPv6([...parts, 0, 0, 0, 0]).toString()}/64${zone}`;
}
