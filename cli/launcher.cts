/**
 * The installed `skiff`: checks the Node.js version, turns on the compile cache, then loads the
 * bundled CLI (dist/bin/skiff.mjs). The build writes it to dist/bin/skiff.cjs with a first line
 * naming the Node.js that `npm start`/`npm test` set up, so `skiff` on the PATH runs on that Node
 * whatever the system's `node` is. CommonJS and plain syntax on purpose: an old `node` running it
 * must get to the version check and say what it needs, not fail to parse the bundle.
 */
import { enableCompileCache } from 'node:module';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

/** package.json `engines` says the same; launcher.test.ts holds the two together. */
export const SUPPORTED_NODE = '^22.19.0 || >=24.0.0';

export function isSupportedNode(version: string): boolean {
  const [major = 0, minor = 0] = version.replace(/^v/, '').split('.').map(Number);
  return major >= 24 || (major === 22 && minor >= 19);
}

/**
 * Where compiled code is cached between runs: the user's own cache directory, never a shared
 * /tmp where another local user could plant entries for root's skiff to load.
 */
export function compileCacheDir(env: NodeJS.ProcessEnv): string | undefined {
  const base = env['XDG_CACHE_HOME'] || (env['HOME'] ? join(env['HOME'], '.cache') : undefined);
  return base === undefined ? undefined : join(base, 'skiff', 'node-compile-cache');
}

if (require.main === module) {
  if (!isSupportedNode(process.versions.node)) {
    process.stderr.write(
      `skiff needs Node.js ${SUPPORTED_NODE} (24 LTS recommended); ${process.execPath} is ${process.version}.\n` +
        'Run skiff as installed (`npm start` or `npm test` sets up Node.js 24 and puts `skiff` on the PATH),\n' +
        'or run this file with a newer node.\n',
    );
    process.exit(1);
  }
  // NODE_COMPILE_CACHE, when set, has already turned the cache on (and NODE_DISABLE_COMPILE_CACHE off)
  const cacheDir = compileCacheDir(process.env);
  if (cacheDir !== undefined && process.env['NODE_COMPILE_CACHE'] === undefined) enableCompileCache(cacheDir);
  import(pathToFileURL(join(__dirname, 'skiff.mjs')).href).catch((err: unknown) => {
    process.stderr.write(`skiff: cannot load ${join(__dirname, 'skiff.mjs')}: ${String(err)}\n`);
    process.exit(1);
  });
}
