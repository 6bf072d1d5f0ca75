/**
 * Contexts (issue 9 item 9): two `skiff up`s with one client config (one HOME). The second adds its
 * own context and says it switched to it; the first cluster stays reachable with --context, and
 * `skiff config get-contexts|use-context|current-context|delete-context` behave as kubectl's.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readConfigDocument } from '../../cli/config.js';
import { prepareTestCluster, startTestCluster, type RunResult, type TestCluster } from './cli-harness.js';

function ok(result: RunResult, what: string): RunResult {
  assert.equal(
    result.code,
    0,
    `${what} failed (exit ${result.code}):\nstdout: ${result.stdout}\nstderr: ${result.stderr}`,
  );
  return result;
}

describe('two clusters, one client config', { timeout: 300_000 }, () => {
  let first: TestCluster;
  let second: TestCluster;
  let secondUp: RunResult;

  before(async () => {
    first = await startTestCluster('ctx-a');
    second = prepareTestCluster('ctx-b');
    // the same config file for both: as two `skiff up` in one HOME
    second.env.SKIFF_CONFIG = first.configPath;
    secondUp = await second.up();
  });

  after(async () => {
    await second?.dispose();
    await first?.dispose();
  });

  const apiOf = async (cluster: TestCluster, ...args: string[]): Promise<string> =>
    JSON.parse(ok(await cluster.skiff([...args, 'cluster-info', '-o', 'json']), 'cluster-info').stdout).api;

  test('the second up adds its context, says it switched, and keeps the first', async () => {
    ok(secondUp, 'second skiff up');
    assert.match(secondUp.stderr, new RegExp(`context "${second.stateDir}"`));
    assert.match(
      secondUp.stderr,
      new RegExp(`switched.*"${first.stateDir}"|"${first.stateDir}".*switched`, 'i'),
    );
    const doc = readConfigDocument(first.configPath)!;
    assert.deepEqual(
      doc.contexts.map((c) => c.name),
      [first.stateDir, second.stateDir],
    );
    assert.equal(doc.currentContext, second.stateDir);
    const contexts = ok(await first.skiff(['config', 'get-contexts']), 'get-contexts').stdout;
    assert.match(contexts, /^CURRENT\s+NAME\s+CLUSTER\s+AUTHINFO\s+NAMESPACE\n/);
    assert.match(
      contexts,
      new RegExp(`\\n\\s+${first.stateDir}\\s+${first.stateDir}\\s+${first.stateDir}\\n`),
    );
    assert.match(contexts, new RegExp(`\\n\\*\\s+${second.stateDir}\\s+`));
    assert.equal(
      ok(await first.skiff(['config', 'current-context']), 'current-context').stdout,
      `${second.stateDir}\n`,
    );
  });

  test('--context reaches the other cluster; use-context switches; delete-context removes', async () => {
    const firstApi = await apiOf(first, '--context', first.stateDir);
    const secondApi = await apiOf(first);
    assert.notEqual(firstApi, secondApi, 'two clusters, two API addresses');
    assert.equal(await apiOf(first, '--context', second.stateDir), secondApi);
    // objects land in the cluster of the context used
    ok(await first.skiff(['--context', first.stateDir, 'create', 'ns', 'only-in-first']), 'create in first');
    ok(await first.skiff(['get', 'ns', 'only-in-first', '--context', first.stateDir]), 'get in first');
    assert.notEqual((await first.skiff(['get', 'ns', 'only-in-first'])).code, 0, 'not in the second');

    const unknown = await first.skiff(['--context', 'nope', 'get', 'ns']);
    assert.equal(unknown.code, 1);
    assert.match(unknown.stderr, /^error: --context nope: no context "nope" in .* \(contexts: /);

    assert.equal(
      ok(await first.skiff(['config', 'use-context', first.stateDir]), 'use-context').stdout,
      `Switched to context "${first.stateDir}".\n`,
    );
    assert.equal(await apiOf(first), firstApi);
    const refused = await first.skiff(['config', 'use-context', 'nope']);
    assert.notEqual(refused.code, 0);
    assert.match(refused.stderr, /no context "nope"/);

    assert.equal(
      ok(await first.skiff(['config', 'delete-context', second.stateDir]), 'delete-context').stdout,
      `deleted context ${second.stateDir} from ${first.configPath}\n`,
    );
    assert.deepEqual(
      readConfigDocument(first.configPath)!.contexts.map((c) => c.name),
      [first.stateDir],
    );
    assert.equal(await apiOf(first), firstApi);
  });
});
