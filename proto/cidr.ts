/**
 * IPv4 addresses and CIDR blocks as numbers: the arithmetic of the address plan (the cluster CIDR,
 * a pod CIDR per node, the service CIDR), shared by the control plane's IPAM and the agents' pod
 * networks. Addresses are unsigned 32-bit numbers. Pure.
 */
import { InvalidArgumentError } from './errors.js';

/** A block `base/prefix`; `base` has no host bits. */
export interface Cidr {
  /** As written, normalized: `10.244.3.0/24`. */
  readonly text: string;
  /** The first address, as a 32-bit unsigned number. */
  readonly base: number;
  readonly prefix: number;
  /** How many addresses it holds (2^(32-prefix)). */
  readonly size: number;
}

const OCTET = '(25[0-5]|2[0-4]\\d|1\\d\\d|[1-9]?\\d)';
const IPV4_RE = new RegExp(`^${OCTET}\\.${OCTET}\\.${OCTET}\\.${OCTET}$`);

/** `10.244.3.2` → its number; undefined when it is not a dotted quad. */
export function ipv4Number(text: string): number | undefined {
  const m = IPV4_RE.exec(text);
  if (!m) return undefined;
  return ((Number(m[1]) << 24) | (Number(m[2]) << 16) | (Number(m[3]) << 8) | Number(m[4])) >>> 0;
}

/** `10.244.3.2` → its number; InvalidArgumentError naming `field` when it is not a dotted quad. */
export function parseIPv4(text: string, field = 'address'): number {
  const n = ipv4Number(text);
  if (n === undefined) throw new InvalidArgumentError(`${field}: "${text}" is not an IPv4 address`, field);
  return n;
}

export function formatIPv4(n: number): string {
  return `${n >>> 24}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`;
}

function block(base: number, prefix: number): Cidr {
  return { text: `${formatIPv4(base)}/${prefix}`, base, prefix, size: 2 ** (32 - prefix) };
}

/** `10.244.3.0/24` → the block; InvalidArgumentError naming `field` when malformed or with host bits set. */
export function parseCidr(text: string, field = 'cidr'): Cidr {
  const slash = text.indexOf('/');
  const base = slash > 0 ? ipv4Number(text.slice(0, slash)) : undefined;
  const prefixText = slash > 0 ? text.slice(slash + 1) : '';
  const prefix = /^\d{1,2}$/.test(prefixText) ? Number(prefixText) : NaN;
  if (base === undefined || !(prefix >= 0 && prefix <= 32))
    throw new InvalidArgumentError(
      `${field}: "${text}" is not an IPv4 CIDR block (e.g. 10.244.0.0/16)`,
      field,
    );
  const size = 2 ** (32 - prefix);
  if (base % size !== 0)
    throw new InvalidArgumentError(
      `${field}: "${text}" has host bits set; the block is ${formatIPv4(base - (base % size))}/${prefix}`,
      field,
    );
  return block(base, prefix);
}

export function cidrContains(cidr: Cidr, address: number): boolean {
  return address >= cidr.base && address < cidr.base + cidr.size;
}

/** `inner` lies wholly inside `outer`. */
export function cidrWithin(inner: Cidr, outer: Cidr): boolean {
  return cidrContains(outer, inner.base) && inner.prefix >= outer.prefix;
}

export function cidrsOverlap(a: Cidr, b: Cidr): boolean {
  return cidrContains(a, b.base) || cidrContains(b, a.base);
}

/** How many /`prefix` subnets `outer` holds. */
export function subnetCount(outer: Cidr, prefix: number): number {
  if (prefix < outer.prefix) return 0;
  return 2 ** (prefix - outer.prefix);
}

/** The `index`-th /`prefix` subnet of `outer`. */
export function subnet(outer: Cidr, prefix: number, index: number): Cidr {
  return block(outer.base + index * 2 ** (32 - prefix), prefix);
}
