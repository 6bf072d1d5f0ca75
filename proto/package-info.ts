/**
 * Where this skiff package lives on disk and which version it is. Code runs from three places:
 * the TypeScript sources (tsx), tsc's output under dist/, and the bundled binary under dist/bin/;
 * each finds the package root by walking up from its own file to skiff's package.json, so files
 * beside it (dist/native, cli/up/demo.yaml) are found the same way from all three.
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

let found: { root: string; version: string } | undefined;

/** The package found from this file: the first package.json above it named skiff. */
function thisPackage(): { root: string; version: string } {
  if (found !== undefined) return found;
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const manifest = readSkiffManifest(join(dir, 'package.json'));
    if (manifest !== undefined) return (found = { root: dir, version: manifest.version });
    const up = dirname(dir);
    if (up === dir) {
      throw new Error(
        `find skiff's package.json: none above ${fileURLToPath(import.meta.url)}; run skiff from its package`,
      );
    }
    dir = up;
  }
}

function readSkiffManifest(path: string): { version: string } | undefined {
  if (!existsSync(path)) return undefined;
  try {
    const manifest = JSON.parse(readFileSync(path, 'utf8')) as { name?: unknown; version?: unknown };
    if (manifest.name !== 'skiff') return undefined;
    return { version: typeof manifest.version === 'string' ? manifest.version : 'unknown' };
  } catch {
    return undefined;
  }
}

/** The directory holding skiff's package.json. */
export function packageRoot(): string {
  return thisPackage().root;
}

/** The package's version (package.json `version`). */
export function packageVersion(): string {
  return thisPackage().version;
}

/**
 * The node arguments that run this package's `skiff`: the built launcher (dist/bin/skiff.cjs), or,
 * in a source tree that was never built, cli/main.ts through tsx. `skiff up` starts its control
 * plane with them, and the tests drive the CLI with them.
 */
export function skiffEntryArgv(): string[] {
  const root = packageRoot();
  const built = join(root, 'dist/bin/skiff.cjs');
  if (existsSync(built)) return [built];
  return ['--import', 'tsx', join(root, 'cli/main.ts')];
}
