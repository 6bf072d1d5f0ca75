/**
 * How the validators report: they throw a FieldViolation (path + reason) at the first problem,
 * and validateObject turns it into the one InvalidArgumentError the API returns, prefixed with
 * which object was being validated.
 */
export class FieldViolation extends Error {
  constructor(
    readonly path: string,
    readonly reason: string,
  ) {
    super(`field "${path}": ${reason}`);
  }
}

export function violation(path: string, reason: string): never {
  throw new FieldViolation(path, reason);
}

export function joinPath(path: string, name: string): string {
  return path === '' ? name : `${path}.${name}`;
}

/** Throws when `problem` (a reason from names.ts) is set. */
export function requireValid(path: string, value: string, problem: string | undefined): void {
  if (problem !== undefined) violation(path, `"${value}" ${problem}`);
}

export function requireNonEmpty(path: string, value: string | undefined, what: string): string {
  if (value === undefined || value === '') violation(path, `required: ${what}`);
  return value;
}

/** Empty is allowed (the default applies); anything else must be one of `allowed`. */
export function requireOneOf(path: string, value: string | undefined, allowed: readonly string[]): void {
  if (value !== undefined && value !== '' && !allowed.includes(value)) {
    violation(path, `unsupported value "${value}": must be one of ${allowed.join(', ')}`);
  }
}

/**
 * For optional fields (set or absent): a value that is set must be one of `allowed`, and "" is not
 * one unless listed.
 */
export function requireSetOneOf(path: string, value: string | undefined, allowed: readonly string[]): void {
  if (value !== undefined && !allowed.includes(value)) {
    violation(path, `unsupported value "${value}": must be one of ${allowed.join(', ')}`);
  }
}

export function requireAtLeast(path: string, value: number | undefined, minimum: number): void {
  if (value !== undefined && value < minimum) violation(path, `must be at least ${minimum}, got ${value}`);
}

export function requireInRange(
  path: string,
  value: number | undefined,
  minimum: number,
  maximum: number,
): void {
  if (value !== undefined && (value < minimum || value > maximum)) {
    violation(path, `must be between ${minimum} and ${maximum}, got ${value}`);
  }
}

/** Exactly one of `present`'s entries (name → set) is set; `what` names the choice. */
export function requireExactlyOne(path: string, present: Record<string, boolean>, what: string): void {
  const set = Object.entries(present)
    .filter(([, isSet]) => isSet)
    .map(([name]) => name);
  const names = Object.keys(present).join(', ');
  if (set.length === 0) violation(path, `must specify a ${what}: one of ${names}`);
  if (set.length > 1) violation(path, `may specify only one ${what}, found ${set.join(' and ')}`);
}
