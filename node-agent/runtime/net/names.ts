/** Names and link addresses skiff gives what it adds to a host's network. Pure. */
import { ipv4Number } from '../../../proto/cidr.js';

/** The host end of every sandbox veth starts with this (and nothing else of skiff's does). */
export const VETH_PREFIX = 'skv';

/** Linux's IFNAMSIZ less the NUL: the longest interface name. */
export const MAX_IFNAME = 15;

/**
 * The host end of a sandbox's veth pair: `skv` and the first 12 hex digits of its id (15
 * characters). Two sandboxes of one node share a name only if their random ids share 48 bits;
 * the lease records it, and a new sandbox whose name another lease has is refused (ipam.ts).
 * The sandbox's end is `eth0`, made in the sandbox's namespace, so the two never meet.
 */
export function vethName(sandboxId: string): string {
  if (!/^[0-9a-f]{12}/.test(sandboxId)) throw new Error(`veth name: "${sandboxId}" is not a sandbox id`);
  return `${VETH_PREFIX}${sandboxId.slice(0, MAX_IFNAME - VETH_PREFIX.length)}`;
}

/** The interface a sandbox sees (Kubernetes' and Docker's habit). */
export const POD_INTERFACE = 'eth0';

/**
 * A fixed link address for the bridge, made from its IPv4 address as ovn-kubernetes does
 * (`0a:58` + the address): a bridge left to choose takes the lowest address of its ports, and
 * changes it as veths come and go, which leaves stale gateway entries in the pods' ARP caches.
 */
export function bridgeMac(gateway: string): string {
  return addressMac(gateway, 'bridge address');
}

/** The VXLAN device every node of a `vxlan` cluster has (flannel's is `flannel.1`). */
export const VXLAN_DEVICE = 'skiff.vxlan';
/** Its VXLAN network identifier and UDP port: flannel's, so a firewall rule written for it fits. */
export const VXLAN_VNI = 1;
export const VXLAN_PORT = 8472;
/** What VXLAN adds to each packet over IPv4: outer IP 20 + UDP 8 + VXLAN 8 + inner Ethernet 14. */
export const VXLAN_OVERHEAD = 50;

/**
 * A node's VTEP (its VXLAN device) link address, made from the VTEP's IPv4 address (its pod CIDR's
 * first, `.0`) as the bridge's is from `.1`: every node derives every other node's from the Node's
 * `spec.podCIDR`, so nothing is published, and a VTEP made again after a restart keeps its address.
 */
export function vtepMac(vtep: string): string {
  return addressMac(vtep, 'VTEP address');
}

/** `0a:58` (locally administered, unicast) and the four bytes of `address`. */
function addressMac(address: string, what: string): string {
  const n = ipv4Number(address);
  if (n === undefined) throw new Error(`${what}: "${address}" is not an IPv4 address`);
  const bytes = [0x0a, 0x58, n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255];
  return bytes.map((b) => b.toString(16).padStart(2, '0')).join(':');
}

/** A Linux interface name: 1–15 characters, none of them '/', ':', whitespace or NUL; not . or .. */
export function validIfname(name: string): boolean {
  return (
    name.length >= 1 && name.length <= MAX_IFNAME && !/[/:\s\0]/.test(name) && name !== '.' && name !== '..'
  );
}
