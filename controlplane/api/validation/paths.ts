/** Paths inside a volume or a profile directory, as Kubernetes checks them. */
import { violation } from './field-violation.js';

/** Relative, and no element is `..`: it cannot leave the directory it is resolved in. */
export function validateLocalDescendingPath(path: string, value: string): void {
  if (value.startsWith('/')) violation(path, `"${value}" must be a relative path`);
  if (value.split('/').includes('..')) violation(path, `"${value}" must not contain '..'`);
}

/**
 * A file a volume projects (configMap, secret, downwardAPI items): descending, and not starting
 * with `..`, which names the volume's own bookkeeping (`..data`).
 */
export function validateLocalNonReservedPath(path: string, value: string): void {
  validateLocalDescendingPath(path, value);
  if (value.startsWith('..')) violation(path, `"${value}" must not start with '..'`);
}
