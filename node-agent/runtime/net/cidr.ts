/** IPv4 addresses and CIDR blocks as numbers: the arithmetic of the address plan. Pure. */
import { InvalidArgumentError } from '../../../proto/errors.js';

/** A block `base/prefix`; `base` has no host bits. */
export interface Ipv4Cidr {
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
export function parseIpv4(text: string): number | undefined {
  const m = IPV4_RE.exec(text);
  if (!m) return undefined;
  return ((Number(m[1]) << 24) | (Number(m[2]) << 16) | (Number(m[3]) << 8) | Number(m[4])) >>> 0;
}

export function formatIpv4(n: number): string {
  return `${n >>> 24}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`;
}

/** `10.244.3.0/24` → the block; InvalidArgumentError naming `field` when malformed or with host bits set. */
export function parseCidr(text: string, field: string): Ipv4Cidr {
  const slash = text.indexOf('/');
  const base = slash > 0 ? parseIpv4(text.slice(0, slash)) : undefined;
  const prefixText = slash > 0 ? text.slice(slash + 1) : '';
  const prefix = /^\d{1,2}$/.test(prefixText) ? Number(prefixText) : NaN;
  if (base === undefined || !(prefix >= 0 && prefix <= 32)) {
    throw new InvalidArgumentError(
      `${field}: "${text}" is not an IPv4 CIDR block (e.g. 10.244.0.0/16)`,
      field,
    );
  }
  const size = 2 ** (32 - prefix);
  if (base % size !== 0) {
    throw new InvalidArgumentError(
      `${field}: "${text}" has host bits set; the block is ${formatIpv4(base - (base % size))}/${prefix}`,
      field,
    );
  }
  return { text: `${formatIpv4(base)}/${prefix}`, base, prefix, size };
}

export function cidrContains(cidr: Ipv4Cidr, ip: number): boolean {
  return ip >= cidr.base && ip < cidr.base + cidr.size;
}

/** `inner` lies wholly inside `outer`. */
export function cidrWithin(inner: Ipv4Cidr, outer: Ipv4Cidr): boolean {
  return cidrContains(outer, inner.base) && inner.prefix >= outer.prefix;
}

export function cidrsOverlap(a: Ipv4Cidr, b: Ipv4Cidr): boolean {
  return cidrContains(a, b.base) || cidrContains(b, a.base);
}
