import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { FailedPreconditionError, InternalError, ResourceExhaustedError } from '../../../proto/errors.js';
import type { PortMapping } from '../pod-runtime.js';
import { parseCidr } from '../../../proto/cidr.js';
import {
  capacityOf,
  emptyLeaseState,
  gatewayOf,
  lease,
  leasesExcept,
  nextAddress,
  parseLeaseState,
  release,
  stateForCidr,
  type LeaseState,
} from './ipam.js';

const CIDR = parseCidr('10.244.3.0/24', 'podCIDR');
const NOW = new Date('2025-01-02T03:04:05Z');
const id = (n: number) => n.toString(16).padStart(12, '0').padEnd(64, 'a');

function take(state: LeaseState, n: number, portMappings: PortMapping[] = [], cidr = CIDR) {
  return lease(state, cidr, { id: id(n), name: `pod-${n}`, portMappings }, `skv${id(n).slice(0, 12)}`, NOW);
}

describe('ipam', () => {
  test('the gateway is the second address; pods get the rest but the broadcast', () => {
    assert.equal(gatewayOf(CIDR), '10.244.3.1');
    assert.equal(capacityOf(CIDR), 253);
    assert.equal(capacityOf(parseCidr('10.0.0.0/30', 'x')), 1);
    assert.equal(capacityOf(parseCidr('10.0.0.0/31', 'x')), 0);
  });

  test('addresses go round robin from the last one given: a released address is not reused at once', () => {
    let state = emptyLeaseState(CIDR);
    const ips: string[] = [];
    for (const n of [1, 2, 3]) {
      const got = take(state, n);
      state = got.state;
      ips.push(got.lease.ip);
      assert.ok(got.created);
    }
    assert.deepEqual(ips, ['10.244.3.2', '10.244.3.3', '10.244.3.4']);
    state = release(state, id(2));
    assert.equal(take(state, 4).lease.ip, '10.244.3.5');
    // at the end of the block it wraps to the first free one
    state = { ...state, last: '10.244.3.254' };
    assert.equal(nextAddress(state, CIDR, 'x'), '10.244.3.3');
  });

  test('a sandbox asking again keeps its lease (and address); its new host ports replace the old', () => {
    const first = take(emptyLeaseState(CIDR), 1);
    const again = take(first.state, 1);
    assert.equal(again.created, false);
    assert.equal(again.state, first.state, 'nothing changed: nothing to save');
    assert.equal(again.lease.ip, first.lease.ip);
    const ports: PortMapping[] = [{ hostPort: 80, containerPort: 8080, protocol: 'TCP' }];
    const changed = take(first.state, 1, ports);
    assert.deepEqual(changed.lease.portMappings, ports);
    assert.equal(changed.lease.ip, first.lease.ip);
  });

  test('a full block is an error naming it; a /30 holds one pod', () => {
    const small = parseCidr('10.244.3.0/30', 'podCIDR');
    const one = take(emptyLeaseState(small), 1, [], small);
    assert.equal(one.lease.ip, '10.244.3.2');
    assert.throws(
      () => take(one.state, 2, [], small),
      (err: unknown) =>
        err instanceof ResourceExhaustedError &&
        err.message ===
          'allocate an address for sandbox pod-2: the pod CIDR 10.244.3.0/30 has no address left (1 of 1 held)',
    );
    let state = emptyLeaseState(CIDR);
    for (let n = 1; n <= 253; n++) state = take(state, n).state;
    assert.equal(new Set(Object.values(state.leases).map((l) => l.ip)).size, 253, 'no address twice');
    assert.throws(() => take(state, 254), /10\.244\.3\.0\/24 has no address left \(253 of 253 held\)/);
  });

  test('a host port another sandbox holds is refused, naming the port and the holder', () => {
    const web: PortMapping[] = [{ hostPort: 8080, containerPort: 80, protocol: 'TCP' }];
    const held = take(emptyLeaseState(CIDR), 1, web).state;
    assert.throws(
      () => take(held, 2, [{ hostPort: 8080, containerPort: 81, protocol: 'TCP' }]),
      (err: unknown) =>
        err instanceof FailedPreconditionError &&
        err.message === `host port 8080/TCP is held by sandbox pod-1 (${id(1).slice(0, 12)})`,
    );
    // all addresses take the port on each of them
    assert.throws(
      () => take(held, 2, [{ hostPort: 8080, containerPort: 81, protocol: 'TCP', hostIP: '10.0.0.1' }]),
      /host port 10\.0\.0\.1:8080\/TCP is held by sandbox pod-1 .* as 8080\/TCP/,
    );
    // another protocol, or another port, is free
    const udp = take(held, 2, [{ hostPort: 8080, containerPort: 80, protocol: 'UDP' }]).state;
    const other = take(udp, 3, [{ hostPort: 8081, containerPort: 80, protocol: 'TCP' }]).state;
    // two host addresses each take their own
    const a = take(other, 4, [
      { hostPort: 9000, containerPort: 1, protocol: 'TCP', hostIP: '10.0.0.1' },
    ]).state;
    const b = take(a, 5, [{ hostPort: 9000, containerPort: 1, protocol: 'TCP', hostIP: '10.0.0.2' }]).state;
    assert.equal(Object.keys(b.leases).length, 5);
    // released, the port is free again
    assert.equal(take(release(held, id(1)), 2, web).created, true);
  });

  test('a veth name another lease has is refused (two ids sharing 48 bits)', () => {
    const state = take(emptyLeaseState(CIDR), 1).state;
    assert.throws(
      () =>
        lease(state, CIDR, { id: id(2), name: 'pod-2', portMappings: [] }, `skv${id(1).slice(0, 12)}`, NOW),
      (err: unknown) =>
        err instanceof InternalError && /its veth name skv\w+ is that of sandbox pod-1/.test(err.message),
    );
  });

  test('the leases of sandboxes no longer live are found for release', () => {
    let state = emptyLeaseState(CIDR);
    for (const n of [1, 2, 3]) state = take(state, n).state;
    assert.deepEqual(
      leasesExcept(state, [id(2)]).map((l) => l.name),
      ['pod-1', 'pod-3'],
    );
    assert.deepEqual(leasesExcept(state, [id(1), id(2), id(3)]), []);
    assert.equal(release(state, 'nobody'), state);
  });

  test('a state of another CIDR is dropped when empty, refused while sandboxes hold its addresses', () => {
    const other = parseCidr('10.244.9.0/24', 'podCIDR');
    const held = take(emptyLeaseState(CIDR), 1).state;
    assert.equal(stateForCidr(held, CIDR), held);
    assert.deepEqual(stateForCidr(release(held, id(1)), other), emptyLeaseState(other));
    assert.throws(
      () => stateForCidr(held, other),
      (err: unknown) =>
        err instanceof FailedPreconditionError &&
        /open pod network 10\.244\.9\.0\/24: 1 sandboxes still hold addresses of the node's former pod CIDR 10\.244\.3\.0\/24 \(pod-1 10\.244\.3\.2\)/.test(
          err.message,
        ),
    );
  });

  test('a saved state is read back; a damaged file is an error naming it, never a silent reset', () => {
    const state = take(emptyLeaseState(CIDR), 1, [
      { hostPort: 80, containerPort: 80, protocol: 'TCP' },
    ]).state;
    assert.deepEqual(parseLeaseState(JSON.stringify(state), '/x/leases.json'), state);
    assert.throws(
      () => parseLeaseState('{"podCIDR', '/x/leases.json'),
      /read pod network leases \/x\/leases\.json: not JSON/,
    );
    assert.throws(() => parseLeaseState('[]', '/x/leases.json'), /not a lease file/);
    const outside = structuredClone(state);
    outside.leases[id(1)]!.ip = '10.244.4.2';
    assert.throws(
      () => parseLeaseState(JSON.stringify(outside), '/x/leases.json'),
      /the lease of sandbox \w+ is malformed/,
    );
  });
});
