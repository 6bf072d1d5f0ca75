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
