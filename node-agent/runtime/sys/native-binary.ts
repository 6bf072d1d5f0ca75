/** Where the runtime's static C executables are found. */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { FailedPreconditionError } from '../../../proto/errors.js';
import { packageRoot } from '../../../proto/package-info.js';

/**
 * The executable `name`: the path in $`envVar` when set, else dist/native/`name` of this package.
 * FailedPreconditionError saying how to build it when neither exists.
 */
export function nativeBinary(name: string, envVar: string): string {
  const fromEnv = process.env[envVar];
  if (fromEnv) return fromEnv;
  const built = join(packageRoot(), 'dist/native', name);
  if (!existsSync(built)) {
    throw new FailedPreconditionError(
      `find ${name}: not built (looked for ${built}); run \`npm run build\` (needs apt gcc make libc6-dev)`,
    );
  }
  return built;
}
