/**
 * Builds the installed `skiff`: esbuild bundles cli/main.ts and everything it imports into
 * dist/bin/skiff.mjs plus one chunk per lazily loaded part (a verb's module, the gRPC client, the
 * control plane, the runtime), so a command loads one or two files instead of hundreds and the
 * compile cache keeps them warm. dist/bin/skiff.cjs is cli/launcher.cts as tsc compiled it, with a
 * first line naming the Node.js running this build (the one `npm start`/`npm test` set up).
 *
 * Run after tsc: `node dist/cli/build/bundle.js`.
 */
import { chmodSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { build, type Plugin } from 'esbuild';
import { packageRoot } from '../../proto/package-info.js';
import { SUPPORTED_NODE, isSupportedNode } from '../launcher.cjs';

/**
 * Loaded from node_modules, not bundled: etcd3 reads its .proto files from beside its own code
 * (`${__dirname}/../proto`), which a bundle does not keep.
 */
const EXTERNAL = ['etcd3'];

/**
 * commander requires node:child_process when loaded, to run executable subcommands, which skiff
 * has none of; loading it brings dgram, the socket list, the process bindings and their modules
 * into every command. Its one use, `spawn`, loads it when called.
 */
const commanderSpawnOnCall: Plugin = {
  name: 'commander-spawn-on-call',
  setup(build) {
    build.onResolve({ filter: /^(?:node:)?child_process$/ }, (args) =>
      args.importer.includes('/node_modules/commander/')
        ? { path: 'child_process', namespace: 'commander-spawn-on-call' }
        : undefined,
    );
    build.onLoad({ filter: /.*/, namespace: 'commander-spawn-on-call' }, () => ({
      contents: "module.exports = { spawn: (...args) => require('node:child_process').spawn(...args) };",
      loader: 'js',
    }));
  },
};

if (!isSupportedNode(process.versions.node)) {
  process.stderr.write(
    `build skiff: this is Node.js ${process.version}; skiff needs ${SUPPORTED_NODE}: build through \`npm start\` or \`npm test\`, which set up Node.js 24\n`,
  );
  process.exit(1);
}

const root = packageRoot();
const outdir = join(root, 'dist/bin');
rmSync(outdir, { recursive: true, force: true });
const result = await build({
  absWorkingDir: root,
  entryPoints: { skiff: 'cli/main.ts' },
  outdir,
  chunkNames: 'chunks/[name]-[hash]',
  outExtension: { '.js': '.mjs' },
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node22.19',
  external: EXTERNAL,
  plugins: [commanderSpawnOnCall],
  // bundled CommonJS packages (grpc-js, pino) call require() for Node's own modules
  banner: {
    js: "import { createRequire as skiffCreateRequire } from 'node:module'; const require = skiffCreateRequire(import.meta.url);",
  },
  sourcemap: 'linked',
  metafile: true,
  logLevel: 'warning',
});
// which sources each output holds: bundle.test.ts checks that a verb loads only what it needs
writeFileSync(join(outdir, 'metafile.json'), JSON.stringify(result.metafile));

const launcher = readFileSync(join(root, 'dist/cli/launcher.cjs'), 'utf8').replace(
  /\n\/\/# sourceMappingURL=.*\n?$/,
  '\n',
);
const launcherPath = join(outdir, 'skiff.cjs');
writeFileSync(launcherPath, `#!${process.execPath}\n${launcher}`);
chmodSync(launcherPath, 0o755);
