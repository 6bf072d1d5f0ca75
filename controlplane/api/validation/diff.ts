/**
 * The path of the first difference between two values in the Kubernetes JSON shape, for
 * "field is immutable" errors that say which field changed. Given the message type of the values
 * (or 'map'), map keys are written as the rest of the API writes them: `data[app.conf]`,
 * `spec.selector.matchLabels[app]`.
 */
import { messages, type MessageName } from '../../../proto/gen/messages.js';

/** A skiff.v1 message name ("PodSpec"), or 'map' for a map of strings. */
export type DiffShape = MessageName | 'map';

const childShapes = new Map<DiffShape, Map<string, DiffShape | undefined>>();

function childShape(shape: MessageName, key: string): DiffShape | undefined {
  let fields = childShapes.get(shape);
  if (fields === undefined) {
    fields = new Map();
    for (const field of messages[shape].fields) {
      const nested = typeof field.type === 'string' ? undefined : (field.type.name as MessageName);
      fields.set(field.jsonName, field.map ? 'map' : nested);
    }
    childShapes.set(shape, fields);
  }
  return fields.get(key);
}

export function firstDifference(a: unknown, b: unknown, path: string, shape?: DiffShape): string | undefined {
  if (Object.is(a, b)) return undefined;
  if (Array.isArray(a) && Array.isArray(b)) {
    for (let i = 0; i < Math.max(a.length, b.length); i++) {
      const found = firstDifference(a[i], b[i], `${path}[${i}]`, shape);
      if (found !== undefined) return found;
    }
    return undefined;
  }
  if (isRecord(a) && isRecord(b)) {
    for (const key of new Set([...Object.keys(a), ...Object.keys(b)])) {
      const found =
        shape === 'map'
          ? firstDifference(a[key], b[key], `${path}[${key}]`)
          : firstDifference(
              a[key],
              b[key],
              path === '' ? key : `${path}.${key}`,
              shape === undefined ? undefined : childShape(shape, key),
            );
      if (found !== undefined) return found;
    }
    return undefined;
  }
  return path;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
