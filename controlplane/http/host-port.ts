import { InvalidArgumentError } from '../../proto/errors.js';

/** Parses a listen address `host:port` (IPv6 as `[::1]:7440`); `flag` names it in the error. */
export function parseHostPort(address: string, flag: string): { host: string; port: number } {
  const match = /^(\[[^\]]+\]|[^:[\]]+):(\d{1,5})$/.exec(address);
  const port = match ? Number(match[2]) : NaN;
  if (!match || port > 65535) {
    throw new InvalidArgumentError(`parse ${flag} "${address}": want host:port, e.g. 127.0.0.1:7440`, flag);
  }
  return { host: match[1]!.replace(/^\[|\]$/g, ''), port };
}

export function formatHostPort(host: string, port: number): string {
  return `${host.includes(':') ? `[${host}]` : host}:${port}`;
}

/**
 * A listen flag's addresses: `host:port`, or several comma-separated (the first is the one the
 * server advertises, e.g. `skiff up`'s nodes' switch address before 127.0.0.1); each checked.
 */
export function listenAddresses(text: string, flag: string): string[] {
  const addresses = text.split(',').map((a) => a.trim());
  for (const address of addresses) parseHostPort(address, flag);
  return addresses;
}
