/**
 * A registry in a process of its own, for the suites that need several processes on one
 * directory or a crash mid-upload: `node registry-server-child.js` with SKIFF_REGISTRY_CHILD holding
 * JSON `{dir, tokens, options}`. Prints one line `{"address":"127.0.0.1:port","pid":n}` when
 * serving; runs until SIGTERM (or SIGKILL, which is the point of some tests).
 */
import { startTestRegistry, type TestRegistryOptions } from './registry-server-harness.js';

const config = JSON.parse(process.env.SKIFF_REGISTRY_CHILD ?? '{}') as {
  dir: string;
  tokens: NonNullable<TestRegistryOptions['tokens']>;
  options?: TestRegistryOptions;
};
const registry = await startTestRegistry({ ...config.options, dir: config.dir, tokens: config.tokens });
process.stdout.write(`${JSON.stringify({ address: registry.address, pid: process.pid })}\n`);
process.once('SIGTERM', () => {
  void registry.close().then(() => process.exit(0));
});
