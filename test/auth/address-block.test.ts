import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { addressBlock } from '../../src/auth/address-block.ts';

describe('addressBlock: the addresses one peer is taken to hold', () => {
  it('is an IPv4 address itself, and an IPv4-mapped IPv6 address its IPv4 address', () => {
    assert.equal(addressBlock('10.0.0.1'), '10.0.0.1');
    assert.equal(addressBlock('::ffff:10.0.0.1'), '10.0.0.1');
    assert.equal(addressBlock('::ffff:a00:1'), '10.0.0.1', 'the same, written in hexadecimal');
  });

  it("is an IPv6 address's /64, however the address is written", () => {
    assert.equal(addressBlock('2001:db8:1:2:3:4:5:6'), '2001:db8:1:2::/64');
    assert.equal(addressBlock('2001:DB8:0001:0002::1'), '2001:db8:1:2::/64');
    assert.equal(addressBlock('2001:db8:1:3::1'), '2001:db8:1:3::/64');
    assert.equal(addressBlock('::1'), '::/64');
    assert.equal(addressBlock('64:ff9b::a00:1'), '64:ff9b::/64', 'NAT64 is not IPv4-mapped: an IPv6 address');
  });

  it("keeps a link-local address's zone: each interface is a link of its own", () => {
    assert.equal(addressBlock('fe80::1%eth0'), 'fe80::/64%eth0');
    assert.equal(addressBlock('fe80::2:3%eth0'), 'fe80::/64%eth0');
    // Zones as Node names them that ipaddr.js would not parse: a bridge, a VLAN.
    assert.equal(addressBlock('fe80::1%br-lan'), 'fe80::/64%br-lan');
    assert.equal(addressBlock('fe80::1%eth0.100'), 'fe80::/64%eth0.100');
    assert.notEqual(addressBlock('fe80::1%eth0'), addressBlock('fe80::1%eth1'));
  });

  it('keeps anything that is not an IP address as it is (the Unix socket is `local`)', () => {
    assert.equal(addressBlock('local'), 'local');
  });
});
