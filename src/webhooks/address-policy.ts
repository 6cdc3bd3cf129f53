import { BlockList, isIP } from 'node:net';
import { ValidationError } from '../core/errors.ts';

/**
 * Addresses a webhook of an untrusted owner may not reach unless allowed (docs/webhooks.md,
 * "SSRF"): loopback (the server's own admin API), private networks, link-local (cloud metadata
 * at 169.254.169.254), shared, multicast, reserved and unspecified ranges.
 */
const PRIVATE_V4 = [
  ['0.0.0.0', 8],
  ['10.0.0.0', 8],
  ['100.64.0.0', 10],
  ['127.0.0.0', 8],
  ['169.254.0.0', 16],
  ['172.16.0.0', 12],
  ['192.0.0.0', 24],
  // Documentation (TEST-NET-1, -2, -3): never a real receiver.
  ['192.0.2.0', 24],
  ['192.168.0.0', 16],
  ['198.18.0.0', 15],
  ['198.51.100.0', 24],
  ['203.0.113.0', 24],
  ['224.0.0.0', 4],
  ['240.0.0.0', 4],
] as const;
const PRIVATE_V6 = [
  ['::', 128],
  ['::1', 128],
  // NAT64, well-known and local-use: an IPv4 address inside, which a gateway reaches for us.
  ['64:ff9b::', 96],
  ['64:ff9b:1::', 48],
  // Discard-only.
  ['100::', 64],
  // Teredo and 6to4 carry an IPv4 address inside too (a private one, as far as this check
  // knows); documentation.
  ['2001::', 32],
  ['2001:db8::', 32],
  ['2002::', 16],
  ['fc00::', 7],
  ['fe80::', 10],
  ['ff00::', 8],
] as const;

/**
 * Decides which addresses a webhook delivery may connect to. Trusted deliveries (a server-wide
 * webhook, an admin's job) reach any address; others only public ones, or those in `allow`
 * (`serve --webhook-allow CIDR`).
 */
export class WebhookAddressPolicy {
  readonly #private = new BlockList();
  readonly #allowed = new BlockList();
  readonly allow: readonly string[];

  /** `allow`: CIDRs (`10.1.0.0/16`, `fd00::/8`) or single addresses; a bad one is a `ValidationError`. */
  constructor(allow: readonly string[] = []) {
    for (const [net, prefix] of PRIVATE_V4) this.#private.addSubnet(net, prefix, 'ipv4');
    for (const [net, prefix] of PRIVATE_V6) this.#private.addSubnet(net, prefix, 'ipv6');
    for (const cidr of allow) {
      const [address = '', bits] = cidr.split('/');
      const family = isIP(address);
      const prefix = bits === undefined ? (family === 6 ? 128 : 32) : Number(bits);
      if (family === 0 || !Number.isInteger(prefix) || prefix < 0 || prefix > (family === 6 ? 128 : 32)) {
        throw ValidationError.expected('webhookAllow', 'CIDRs like `10.0.0.0/8` or `fd00::/8`', cidr);
      }
      this.#allowed.addSubnet(address, prefix, family === 6 ? 'ipv6' : 'ipv4');
    }
    this.allow = [...allow];
  }

  /** Null when `address` (an IP) may be reached; else why not. */
  refusal(address: string, trusted: boolean): string | null {
    if (trusted) return null;
    const ip = unmapped(address);
    const family = isIP(ip) === 6 ? 'ipv6' : 'ipv4';
    if (this.#allowed.check(ip, family)) return null;
    if (!this.#private.check(ip, family)) return null;
    return `${address} is a loopback, private or reserved address: only admins' webhooks may reach it unless the server allows it (serve --webhook-allow)`;
  }
}

/** `::ffff:127.0.0.1` is 127.0.0.1: checked as IPv4, so a mapped address cannot slip through. */
function unmapped(address: string): string {
  const m = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  return m ? m[1]! : address;
}
