/** ConfigMap and Secret: key syntax, size, and immutability once `immutable: true` is set. */
import type { ConfigMap, Secret } from '../../../proto/gen/types.js';
import { firstDifference } from './diff.js';
import { requireValid, violation } from './field-violation.js';
import { checkConfigKey } from './names.js';

/** Kubernetes' limit on the data of one ConfigMap or Secret. */
export const MAX_CONFIG_BYTES = 1024 * 1024;

function base64Length(value: string): number {
  return Math.floor((value.length * 3) / 4) - (value.endsWith('==') ? 2 : value.endsWith('=') ? 1 : 0);
}

function validateKeys(parts: [string, Record<string, string> | undefined, boolean][], kind: string): void {
  const seen = new Map<string, string>();
  let total = 0;
  for (const [field, data, base64] of parts) {
    for (const [key, value] of Object.entries(data ?? {})) {
      requireValid(`${field}[${key}]`, key, checkConfigKey(key));
      const other = seen.get(key);
      if (other !== undefined) violation(`${field}[${key}]`, `duplicate key "${key}": also in ${other}`);
      seen.set(key, field);
      total += base64 ? base64Length(value) : Buffer.byteLength(value);
    }
  }
  if (total > MAX_CONFIG_BYTES) {
    violation(
      parts[0]![0],
      `the ${kind}'s data is ${total} bytes, more than the limit of ${MAX_CONFIG_BYTES}`,
    );
  }
}

function validateImmutable(
  kind: string,
  immutable: boolean | undefined,
  old: { immutable?: boolean } | undefined,
  fields: [string, unknown, unknown][],
): void {
  if (old?.immutable !== true) return;
  if (immutable !== true)
    violation('immutable', `field is immutable: the ${kind} was created immutable and stays so`);
  for (const [field, value, oldValue] of fields) {
    const changed = firstDifference(value, oldValue, field, 'map');
    if (changed !== undefined)
      violation(changed, `field is immutable: the ${kind} is immutable; create a new one`);
  }
}

export function validateConfigMap(cm: ConfigMap, old: ConfigMap | undefined): void {
  validateKeys(
    [
      ['data', cm.data, false],
      ['binaryData', cm.binaryData, true],
    ],
    'ConfigMap',
  );
  validateImmutable('ConfigMap', cm.immutable, old, [
    ['data', cm.data, old?.data],
    ['binaryData', cm.binaryData, old?.binaryData],
  ]);
}

export function validateSecret(secret: Secret, old: Secret | undefined): void {
  validateKeys(
    [
      ['data', secret.data, true],
      ['stringData', secret.stringData, false],
    ],
    'Secret',
  );
  if (secret.type !== undefined && secret.type.length > 253)
    violation('type', 'must be no more than 253 characters');
  if (old && (old.type ?? '') !== (secret.type ?? '')) {
    violation('type', `field is immutable: was "${old.type ?? ''}", got "${secret.type ?? ''}"`);
  }
  validateImmutable('Secret', secret.immutable, old, [
    ['data', secret.data, old?.data],
    ['stringData', secret.stringData, old?.stringData],
  ]);
}
