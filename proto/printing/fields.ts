/** Safe reads from API objects, which reach the printers as untyped JSON. */
export type ObjectJson = Record<string, unknown>;

export function field(obj: unknown, ...path: (string | number)[]): unknown {
  let value: unknown = obj;
  for (const part of path) {
    if (value === null || typeof value !== 'object') return undefined;
    value = (value as Record<string | number, unknown>)[part];
  }
  return value;
}

export function str(obj: unknown, ...path: (string | number)[]): string | undefined {
  const value = field(obj, ...path);
  if (typeof value === 'string') return value;
  if (typeof value === 'number' || typeof value === 'bigint' || typeof value === 'boolean')
    return String(value);
  return undefined;
}

export function num(obj: unknown, ...path: (string | number)[]): number | undefined {
  const value = field(obj, ...path);
  if (typeof value === 'number') return value;
  if (typeof value === 'bigint') return Number(value);
  if (typeof value === 'string' && /^-?\d+$/.test(value)) return Number(value);
  return undefined;
}

export function list(obj: unknown, ...path: (string | number)[]): unknown[] {
  const value = field(obj, ...path);
  return Array.isArray(value) ? value : [];
}

export function record(obj: unknown, ...path: (string | number)[]): Record<string, unknown> {
  const value = field(obj, ...path);
  return value !== null && typeof value === 'object' && !Array.isArray(value)
    ? (value as Record<string, unknown>)
    : {};
}

export function name(obj: unknown): string {
  return str(obj, 'metadata', 'name') ?? '';
}

export function namespace(obj: unknown): string {
  return str(obj, 'metadata', 'namespace') ?? '';
}

/** `a=1,b=2`, or `<none>`. */
export function formatMap(map: Record<string, unknown>): string {
  const entries = Object.entries(map);
  return entries.length === 0 ? '<none>' : entries.map(([k, v]) => `${k}=${String(v)}`).join(',');
}

/** A label selector (matchLabels + matchExpressions) as kubectl prints it. */
export function formatSelector(selector: unknown): string {
  const parts = Object.entries(record(selector, 'matchLabels')).map(([k, v]) => `${k}=${String(v)}`);
  for (const expr of list(selector, 'matchExpressions')) {
    const key = str(expr, 'key') ?? '';
    const values = list(expr, 'values').map(String).join(',');
    switch (str(expr, 'operator')) {
      case 'In':
        parts.push(`${key} in (${values})`);
        break;
      case 'NotIn':
        parts.push(`${key} notin (${values})`);
        break;
      case 'Exists':
        parts.push(key);
        break;
      case 'DoesNotExist':
        parts.push(`!${key}`);
        break;
    }
  }
  return parts.length === 0 ? '<none>' : parts.join(',');
}
