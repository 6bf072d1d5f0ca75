/** Where the runtime's static C executables are found. */
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { FailedPreconditionError } from '../../../proto/errors.js';

/**
 * The executable `name`: the path in $`envVar` when set, else dist/native/`name` of this package
 * (found from this file, whether it runs from the sources or compiled under dist/).
 * FailedPreconditionError saying how to build it when neither exists.
 */
export function nativeBinary(name: string, envVar: string): string {
  const fromEnv = process.env[envVar];
  if (fromEnv) return fromEnv;
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) {
    const up = dirname(dir);
    if (up === dir) break;
    dir = up;
  }
  // Compiled code lives under dist/, so the package root may be one level above the found dir.
  const candidates = [join(dir, 'dist/native', name), join(dir, '../dist/native', name)];
  const found = candidates.find((p) => existsSync(p));
  if (!found) {
    throw new FailedPreconditionError(
      `find ${name}: not built (looked for ${candidates[0]}); run \`npm run build\` (needs apt gcc make libc6-dev)`,
    );
  }
  return found;
}
