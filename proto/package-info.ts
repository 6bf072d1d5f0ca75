/**
 * Where this skiff package lives on disk and which version it is. Code runs from three places:
 * the TypeScript sources (tsx), tsc's output under dist/, and the bundled binary under dist/bin/;
 * each finds the package root by walking up from its own file to skiff's package.json, so files
 * beside it (dist/native, cli/up/demo.yaml) are found the same way from all three.
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

let cachedRoot: string | undefined;
let cachedVersion: string | undefined;

/** The directory holding skiff's package.json. */
export function packageRoot(): string {
  if (cachedRoot !== undefined) return cachedRoot;
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const manifest = join(dir, 'package.json');
    if (existsSync(manifest) && isSkiffManifest(manifest)) return (cachedRoot = dir);
    const up = dirname(dir);
    if (up === dir) {
      throw new Error(
        `find skiff's package.json: none above ${fileURLToPath(import.meta.url)}; run skiff from its package`,
      );
    }
    dir = up;
  }
}

function isSkiffManifest(path: string): boolean {
  try {
    const manifest = JSON.parse(readFileSync(path, 'utf8')) as { name?: unknown; version?: unknown };
    if (manifest.name !== 'skiff') return false;
    cachedVersion = typeof manifest.version === 'string' ? manifest.version : 'unknown';
    return true;
  } catch {
    return false;
  }
}

/** The package's version (package.json `version`). */
export function packageVersion(): string {
  packageRoot();
  return cachedVersion ?? 'unknown';
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
