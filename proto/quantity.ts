/**
 * Kubernetes resource quantities: "500m", "0.5", "2", "128Mi", "1Gi", "1e3", "1.5k".
 *
 *   quantity ::= [+-] number [suffix]
 *   number   ::= digits | digits "." [digits] | "." digits
 *   suffix   ::= binary (Ki Mi Gi Ti Pi Ei: powers of 1024)
 *              | decimal (m k M G T P E: powers of 1000; "" is 1)
 *              | ("e" | "E") [+-] digits
 *
 * A parsed quantity is held exactly as an integer number of milli-units (bigint), rounded up
 * (away from zero) to the nearest thousandth as Kubernetes does: "0.1m" is 1m. cpu is usually
 * read as milli-units (`milliValue`), memory as whole bytes (`wholeValue`, also rounded up).
 */
import { InvalidArgumentError } from './errors.js';

export type QuantityFormat = 'DecimalSI' | 'BinarySI' | 'DecimalExponent';

export interface Quantity {
  /** The value in thousandths of the unit (millicores for cpu, millibytes for memory). */
  readonly milli: bigint;
  /** The suffix family it was written in; formatQuantity keeps it. */
  readonly format: QuantityFormat;
}

const QUANTITY = /^([+-]?)(\d+(?:\.\d*)?|\.\d+)(?:(Ki|Mi|Gi|Ti|Pi|Ei|m|k|M|G|T|P|E)|[eE]([+-]?\d+))?$/;

const BINARY_POWERS: Record<string, number> = { Ki: 1, Mi: 2, Gi: 3, Ti: 4, Pi: 5, Ei: 6 };
const DECIMAL_EXPONENTS: Record<string, number> = { m: -3, '': 0, k: 3, M: 6, G: 9, T: 12, P: 15, E: 18 };

/** Larger quantities than Kubernetes' int64 range are refused rather than silently wrapped. */
const MAX_MILLI = (2n ** 63n - 1n) * 1000n;
const MAX_TEXT_LENGTH = 64;
const MAX_EXPONENT = 40;

const GRAMMAR_HINT =
  'a quantity is a number with an optional suffix m, k, M, G, T, P, E, Ki, Mi, Gi, Ti, Pi, Ei or e<exponent>, ' +
  'e.g. "500m", "0.5", "128Mi", "1Gi"';

/**
 * Quantities parsed before, by text. Objects repeat a handful of them ("100m", "128Mi") and the
 * bigint arithmetic is most of a parse, which every pod create did several times over (each
 * request and limit, then again to compare them). Only successes are kept (an error names the
 * field it was found in); the map is emptied when full rather than grown.
 */
const parsedQuantities = new Map<string, Quantity>();
const MAX_REMEMBERED_QUANTITIES = 1024;

function invalid(text: string, reason: string, field: string | undefined): never {
  const where = field === undefined ? '' : ` in ${field}`;
  throw new InvalidArgumentError(`parse quantity ${JSON.stringify(text)}${where}: ${reason}`, field);
}

function ceilDiv(numerator: bigint, denominator: bigint): bigint {
  return (numerator + denominator - 1n) / denominator;
}

/**
 * Parses a quantity. Throws InvalidArgumentError (with `field` set to the given path) when the text
 * does not follow the grammar or the value is out of range.
 */
export function parseQuantity(text: string, field?: string): Quantity {
  if (typeof text !== 'string') invalid(String(text), `expected a string; ${GRAMMAR_HINT}`, field);
  if (text.length === 0) invalid(text, `empty; ${GRAMMAR_HINT}`, field);
  if (text.length > MAX_TEXT_LENGTH) invalid(text, `longer than ${MAX_TEXT_LENGTH} characters`, field);
  const known = parsedQuantities.get(text);
  if (known !== undefined) return known;
  const match = QUANTITY.exec(text);
  if (match === null) invalid(text, GRAMMAR_HINT, field);
  const [, sign, number = '', suffix, exponentText] = match;
  const [whole = '', fraction = ''] = number.split('.');
  const mantissa = BigInt(`${whole}${fraction}` || '0');

  let numerator = mantissa * 1000n;
  let denominator = 10n ** BigInt(fraction.length);
  let format: QuantityFormat = 'DecimalSI';
  let exponent = 0;
  if (exponentText !== undefined) {
    format = 'DecimalExponent';
    exponent = Number(exponentText);
    if (Math.abs(exponent) > MAX_EXPONENT) invalid(text, `exponent ${exponentText} is out of range`, field);
  } else if (suffix !== undefined && suffix in BINARY_POWERS) {
    format = 'BinarySI';
    numerator *= 1024n ** BigInt(BINARY_POWERS[suffix]!);
  } else {
    exponent = DECIMAL_EXPONENTS[suffix ?? '']!;
  }
  if (exponent > 0) numerator *= 10n ** BigInt(exponent);
  if (exponent < 0) denominator *= 10n ** BigInt(-exponent);

  const magnitude = ceilDiv(numerator, denominator);
  if (magnitude > MAX_MILLI) invalid(text, 'too large (the limit is 2^63-1 units)', field);
  const quantity: Quantity = Object.freeze({ milli: sign === '-' ? -magnitude : magnitude, format });
  if (parsedQuantities.size >= MAX_REMEMBERED_QUANTITIES) parsedQuantities.clear();
  parsedQuantities.set(text, quantity);
  return quantity;
}

/** True when `text` is a valid quantity. */
export function isQuantity(text: string): boolean {
  try {
    parseQuantity(text);
    return true;
  } catch {
    return false;
  }
}

function asQuantity(value: string | Quantity): Quantity {
  return typeof value === 'string' ? parseQuantity(value) : value;
}

/** Negative, zero or positive as a is less than, equal to or greater than b ("1Gi" > "1G"). */
export function compareQuantities(a: string | Quantity, b: string | Quantity): number {
  const difference = asQuantity(a).milli - asQuantity(b).milli;
  return difference < 0n ? -1 : difference > 0n ? 1 : 0;
}

/** The value in thousandths as a number: millicores for "500m" (500) or "2" (2000). */
export function milliValue(quantity: string | Quantity): number {
  return Number(asQuantity(quantity).milli);
}

/** The value in whole units, rounded up (away from zero): bytes for "128Mi", cores for "1500m" (2). */
export function wholeValue(quantity: string | Quantity): number {
  const { milli } = asQuantity(quantity);
  const magnitude = ceilDiv(milli < 0n ? -milli : milli, 1000n);
  return Number(milli < 0n ? -magnitude : magnitude);
}

const DECIMAL_SUFFIXES: [number, string][] = [
  [18, 'E'],
  [15, 'P'],
  [12, 'T'],
  [9, 'G'],
  [6, 'M'],
  [3, 'k'],
];
const BINARY_SUFFIXES: [number, string][] = [
  [6, 'Ei'],
  [5, 'Pi'],
  [4, 'Ti'],
  [3, 'Gi'],
  [2, 'Mi'],
  [1, 'Ki'],
];

/**
 * The canonical text of a quantity, in its own format with the largest suffix that keeps the
 * number whole: "1536Mi" for 1.5Gi, "1500m" for 1.5, "2k" for 2000, "1e3" for 1e3, "100m" for 0.1.
 * Binary quantities that are not whole multiples of 1024 fall back to decimal ("1000" for 1000 bytes).
 */
export function formatQuantity(quantity: Quantity): string {
  const { milli, format } = quantity;
  const sign = milli < 0n ? '-' : '';
  const magnitude = milli < 0n ? -milli : milli;
  if (magnitude === 0n) return '0';
  if (magnitude % 1000n !== 0n)
    return format === 'DecimalExponent' ? `${sign}${magnitude}e-3` : `${sign}${magnitude}m`;
  const units = magnitude / 1000n;
  if (format === 'BinarySI') {
    for (const [power, suffix] of BINARY_SUFFIXES) {
      const divisor = 1024n ** BigInt(power);
      if (units % divisor === 0n) return `${sign}${units / divisor}${suffix}`;
    }
  }
  for (const [exponent, suffix] of DECIMAL_SUFFIXES) {
    const divisor = 10n ** BigInt(exponent);
    if (units % divisor === 0n) {
      return `${sign}${units / divisor}${format === 'DecimalExponent' ? `e${exponent}` : suffix}`;
    }
  }
  return `${sign}${units}`;
}

/** The canonical text of a quantity given as text: canonicalQuantity("1.5Gi") === "1536Mi". */
export function canonicalQuantity(text: string): string {
  return formatQuantity(parseQuantity(text));
}
