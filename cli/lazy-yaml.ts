/**
 * The yaml package, loaded on first use: most CLI verbs read their config without it (config.ts
 * reads the files `skiff up` writes itself) and print no YAML, and loading it is ~3 ms of a
 * `skiff get`'s start-up. Synchronous, as its callers (printers, the config reader) are.
 */
import { createRequire } from 'node:module';

let loaded: typeof import('yaml') | undefined;

export function yaml(): typeof import('yaml') {
  loaded ??= createRequire(import.meta.url)('yaml') as typeof import('yaml');
  return loaded;
}
