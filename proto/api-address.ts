/**
 * Where a client reaches the API: `host:port` over TCP (TLS when the client has the cluster CA), or
 * `unix:///absolute/path`, the control plane's local socket (`skiff controlplane --api-socket`),
 * which carries no TLS: the socket's mode (0600) and its directory's (0700, the control plane's
 * user's) let no one else connect or put another server in its place, as Docker's and
 * containerd's sockets do. `unix:/absolute/path`, gRPC's spelling, reads the same.
 */
import { InvalidArgumentError } from './errors.js';

export type ApiAddress =
  { transport: 'tcp'; host: string; port: number } | { transport: 'unix'; path: string };

/** The longest socket path the kernel binds or connects to (sun_path holds 108 bytes with its NUL). */
export const MAX_SOCKET_PATH_BYTES = 107;

/** True for `unix:…` addresses (whether or not they are well formed). */
export function isUnixAddress(address: string): boolean {
  return address.startsWith('unix:');
}

/** The address of the socket at `path` (absolute), as configs and messages spell it. */
export function unixAddress(path: string): string {
  return `unix://${path}`;
}

/** Why `path` cannot be a socket's path, or undefined when it can. */
export function socketPathProblem(path: string): string | undefined {
  if (!path.startsWith('/') || path.includes('\0')) return `the socket path "${path}" is not absolute`;
  const bytes = Buffer.byteLength(path);
  return bytes > MAX_SOCKET_PATH_BYTES
    ? `the socket path ${path} is ${bytes} bytes, longer than a Unix socket's ${MAX_SOCKET_PATH_BYTES}`
    : undefined;
}

/** The address parsed, or why it is not one (`server "…" is not …`). */
function parse(address: string): ApiAddress | string {
  if (isUnixAddress(address)) {
    const path = address.startsWith('unix://') ? address.slice('unix://'.length) : address.slice(5);
    if (!path.startsWith('/') || path.startsWith('//'))
      return `server "${address}" is not a Unix socket address: want unix:///absolute/path (e.g. unix:///var/lib/skiff/api.sock)`;
    return socketPathProblem(path) ?? { transport: 'unix', path };
  }
  const match = /^(\[[0-9a-fA-F:.]+\]|[^\s/:[\]]+):(\d{1,5})$/.exec(address);
  if (!match || Number(match[2]) > 65535)
    return `server "${address}" is not host:port (e.g. 127.0.0.1:7440) or unix:///path/to/socket`;
  return { transport: 'tcp', host: match[1]!.replace(/^\[(.*)\]$/, '$1'), port: Number(match[2]) };
}

/** Why `address` is not an API address, or undefined when it is one. */
export function apiAddressProblem(address: string): string | undefined {
  const parsed = parse(address);
  return typeof parsed === 'string' ? parsed : undefined;
}

/**
 * `host:port` or `unix:///absolute/path`; InvalidArgumentError (as `field`) saying which forms are
 * taken, after `where` (what held the address).
 */
export function parseApiAddress(address: string, where = 'connect to the API', field = 'server'): ApiAddress {
  const parsed = parse(address);
  if (typeof parsed === 'string') throw new InvalidArgumentError(`${where}: ${parsed}`, field);
  return parsed;
}
