/**
 * Where the node's cluster DNS forwards what is not the cluster's: `--dns-upstream`, or the node's
 * resolv.conf nameservers. Kept apart from the server so the CLI checks the flag without loading it.
 */
import { isIP } from 'node:net';
import { InvalidArgumentError } from '../../proto/errors.js';
import type { ResolverConfig } from '../agent/pod-dns.js';

export interface Upstream {
  address: string;
  port: number;
}

/**
 * `--dns-upstream`: comma-separated `address[:port]` (IPv6 as `[address]:port`), port 53 by default.
 */
export function parseUpstreams(text: string, field = '--dns-upstream'): Upstream[] {
  return text
    .split(',')
    .map((part) => part.trim())
    .filter((part) => part !== '')
    .map((part) => {
      const bracketed = /^\[([^\]]+)\](?::(\d+))?$/.exec(part);
      const plain = /^([^:]+)(?::(\d+))?$/.exec(part);
      const [address, port] = bracketed
        ? [bracketed[1]!, bracketed[2]]
        : plain
          ? [plain[1]!, plain[2]]
          : [part, undefined]; // a bare IPv6 address
      const portNumber = port === undefined ? 53 : Number(port);
      if (isIP(address) === 0 || !Number.isInteger(portNumber) || portNumber < 1 || portNumber > 65535)
        throw new InvalidArgumentError(
          `${field}: "${part}" is not an upstream resolver; give address[:port] (e.g. 192.0.2.53 or [2001:db8::53]:53)`,
          field,
        );
      return { address, port: portNumber };
    });
}

/** The node's resolv.conf nameservers as upstreams, leaving out `self` (the server's own address). */
export function upstreamsOf(node: ResolverConfig, self: string): Upstream[] {
  return node.nameservers
    .filter((ns) => isIP(ns) !== 0 && ns !== self)
    .map((address) => ({ address, port: 53 }));
}
