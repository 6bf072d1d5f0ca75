/**
 * IPv4 CIDR arithmetic: parsing, membership, and the n-th subnet of a block (pod CIDRs per node).
 * Addresses are unsigned 32-bit numbers here.
 */
import { InvalidArgumentError } from './errors.js';

export interface Cidr {
  /** The network address (host bits cleared). */
  base: number;
  prefix: number;
}

export function parseIPv4(text: string, field = 'address'): number {
  const parts = text.split('.');
  if (parts.length !== 4 || parts.some((p) => !/^\d{1,3}$/.test(p) || Number(p) > 255))
    throw new InvalidArgumentError(`${field}: "${text}" is not an IPv4 address`, field);
  return parts.reduce((n, p) => n * 256 + Number(p), 0);
}

export function formatIPv4(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
}

export function parseCidr(text: string, field = 'cidr'): Cidr {
  const [addr, bits, extra] = text.split('/');
  const prefix = Number(bits);
  if (
    addr === undefined ||
    bits === undefined ||
    extra !== undefined ||
    !/^\d{1,2}$/.test(bits) ||
    prefix > 32
  )
    throw new InvalidArgumentError(`${field}: "${text}" is not an IPv4 CIDR (a.b.c.d/n)`, field);
  const base = parseIPv4(addr, field);
  const size = 2 ** (32 - prefix);
  if (base % size !== 0)
    throw new InvalidArgumentError(
      `${field}: "${text}" has host bits set (the network is ${formatIPv4(base - (base % size))}/${prefix})`,
      field,
    );
  return { base, prefix };
}

export function formatCidr(cidr: Cidr): string {
  return `${formatIPv4(cidr.base)}/${cidr.prefix}`;
}

export function cidrSize(cidr: Cidr): number {
  return 2 ** (32 - cidr.prefix);
}

export function cidrContains(cidr: Cidr, address: number): boolean {
  return address >= cidr.base && address < cidr.base + cidrSize(cidr);
}

/** How many /`prefix` subnets `block` holds. */
export function subnetCount(block: Cidr, prefix: number): number {
  if (prefix < block.prefix) return 0;
  return 2 ** (prefix - block.prefix);
}

/** The `index`-th /`prefix` subnet of `block`. */
export function subnet(block: Cidr, prefix: number, index: number): Cidr {
  return { base: block.base + index * 2 ** (32 - prefix), prefix };
}
