/**
 * Addresses no Service may be sent to, as Kubernetes' endpoint and external-IP validation refuses
 * them (ValidateEndpointIP, ValidateNonSpecialIP): unspecified, loopback, link-local (the metadata
 * service, 169.254.169.254) and link-local multicast. A tenant's EndpointSlice or externalIP naming
 * one would have every node DNAT traffic to its own 127.0.0.1 or hijack the node's own connections
 * there. The API refuses them; the node's proxy leaves out any a stored object still carries.
 */
import { BlockList, isIP } from 'node:net';

const SPECIAL: readonly [string, string, number, 'ipv4' | 'ipv6'][] = [
  ['may not be unspecified (0.0.0.0)', '0.0.0.0', 32, 'ipv4'],
  ['may not be in the loopback range (127.0.0.0/8)', '127.0.0.0', 8, 'ipv4'],
  ['may not be in the link-local range (169.254.0.0/16)', '169.254.0.0', 16, 'ipv4'],
  ['may not be in the link-local multicast range (224.0.0.0/24)', '224.0.0.0', 24, 'ipv4'],
  ['may not be unspecified (::)', '::', 128, 'ipv6'],
  ['may not be loopback (::1)', '::1', 128, 'ipv6'],
  ['may not be in the link-local range (fe80::/10)', 'fe80::', 10, 'ipv6'],
  ['may not be in the link-local multicast range (ff02::/16)', 'ff02::', 16, 'ipv6'],
];

const RANGES = SPECIAL.map(([what, address, prefix, family]) => {
  const list = new BlockList();
  list.addSubnet(address, prefix, family);
  return { what, list, family };
});

/** Why `address` may not be an endpoint or external IP, or undefined when it may (or is no IP). */
export function specialAddressProblem(address: string): string | undefined {
  const family = isIP(address);
  if (family === 0) return undefined;
  const range = RANGES.find((r) => r.family === `ipv${family}` && r.list.check(address, r.family));
  return range?.what;
}
