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
