import { test } from 'node:test';
import assert from 'node:assert/strict';
import { InvalidArgumentError } from './errors.js';
import {
  checkClusterDNS,
  clusterDNSAddress,
  parseClusterDomain,
  parseNetworkBackend,
} from './network-plan.js';

test("the cluster DNS defaults to the service CIDR's tenth address, and a given one must lie in it", () => {
  assert.equal(clusterDNSAddress('10.96.0.0/12'), '10.96.0.10');
  assert.equal(clusterDNSAddress('172.20.0.0/16'), '172.20.0.10');
  assert.equal(checkClusterDNS('10.96.0.53', '10.96.0.0/12'), '10.96.0.53');
  assert.throws(
    () => checkClusterDNS('10.112.0.1', '10.96.0.0/12'),
    /--cluster-dns: 10.112.0.1 is outside the service CIDR 10.96.0.0\/12/,
  );
  assert.throws(() => checkClusterDNS('nope', '10.96.0.0/12'), InvalidArgumentError);
});

test('a network backend is host-gw or vxlan, and a domain is lower-case DNS labels', () => {
  assert.equal(parseNetworkBackend('vxlan'), 'vxlan');
  assert.throws(
    () => parseNetworkBackend('flannel'),
    /"flannel" is not a network backend; use one of host-gw, vxlan/,
  );
  assert.equal(parseClusterDomain('cluster.local'), 'cluster.local');
  assert.equal(parseClusterDomain('corp-1.example'), 'corp-1.example');
  for (const bad of ['Cluster.Local', 'cluster.local.', '-a.b', 'a..b', ''])
    assert.throws(() => parseClusterDomain(bad), /is not a DNS domain/, bad);
});
