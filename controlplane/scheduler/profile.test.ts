import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { InvalidArgumentError } from '../../proto/errors.js';
import { defaultProfile, feasibleNodesToFind, parseProfile } from './profile.js';

function refusal(text: string): InvalidArgumentError {
  try {
    parseProfile(text, 'sched.yaml');
  } catch (err) {
    assert.ok(err instanceof InvalidArgumentError);
    return err;
  }
  assert.fail(`expected ${JSON.stringify(text)} to be refused`);
}

describe('scheduler profile', () => {
  test("the default profile is Kubernetes': its filters in order and its score weights", () => {
    const profile = parseProfile('');
    assert.deepEqual(profile, defaultProfile());
    assert.equal(profile.schedulerName, 'default-scheduler');
    assert.deepEqual(Object.fromEntries(profile.scores.map((s) => [s.name, s.weight])), {
      TaintToleration: 3,
      NodeAffinity: 2,
      NodeResourcesFit: 1,
      PodTopologySpread: 2,
      InterPodAffinity: 2,
      NodeResourcesBalancedAllocation: 1,
      ImageLocality: 1,
    });
    assert.deepEqual(profile.postFilters, ['DefaultPreemption']);
  });

  test('disabled plugins go, an enabled default keeps its place with its new weight, others follow', () => {
    const profile = parseProfile(`
percentageOfNodesToScore: 30
plugins:
  filter:
    disabled: [{name: NodePorts}]
  score:
    disabled: [NodeResourcesBalancedAllocation]
    enabled:
      - {name: ImageLocality, weight: 5}
      - name: NodeAffinity
  postFilter:
    disabled: ['*']
`);
    assert.equal(profile.percentageOfNodesToScore, 30);
    assert.ok(!profile.filters.includes('NodePorts'));
    assert.equal(profile.filters[0], 'NodeUnschedulable');
    assert.deepEqual(
      profile.scores.map((s) => `${s.name}=${s.weight}`),
      [
        'TaintToleration=3',
        'NodeAffinity=2',
        'NodeResourcesFit=1',
        'PodTopologySpread=2',
        'InterPodAffinity=2',
        'ImageLocality=5',
      ],
    );
    assert.deepEqual(profile.postFilters, []);
  });

  test("'*' disables every default; only the enabled ones remain", () => {
    const profile = parseProfile(
      'plugins: {score: {disabled: ["*"], enabled: [{name: NodeResourcesFit, weight: 1}]}}',
    );
    assert.deepEqual(profile.scores, [{ name: 'NodeResourcesFit', weight: 1 }]);
  });

  test('a KubeSchedulerConfiguration with one profile is read too', () => {
    const profile = parseProfile(`
apiVersion: kubescheduler.config.k8s.io/v1
kind: KubeSchedulerConfiguration
percentageOfNodesToScore: 20
podMaxBackoffSeconds: 30
profiles:
  - schedulerName: batch-scheduler
    plugins:
      score:
        enabled: [{name: NodeAffinity, weight: 7}]
`);
    assert.equal(profile.schedulerName, 'batch-scheduler');
    assert.equal(profile.percentageOfNodesToScore, 20);
    assert.equal(profile.podMaxBackoffSeconds, 30);
    assert.equal(profile.scores.find((s) => s.name === 'NodeAffinity')?.weight, 7);
  });

  test('an unknown plugin is named, with the known ones listed', () => {
    const err = refusal('plugins: {score: {enabled: [{name: NodeResourcesMostAllocated, weight: 1}]}}');
    assert.equal(err.field, 'plugins.score.enabled[0].name');
    assert.match(
      err.message,
      /^read scheduler profile sched\.yaml: plugins\.score\.enabled\[0\]\.name: unknown plugin "NodeResourcesMostAllocated"; score plugins: TaintToleration, /,
    );
    const misplaced = refusal('plugins: {filter: {enabled: [ImageLocality]}}');
    assert.match(
      misplaced.message,
      /"ImageLocality" is not a filter plugin; filter plugins: NodeUnschedulable, /,
    );
  });

  test('a weight that is not a positive whole number is refused, with its field path', () => {
    for (const weight of ['0', '-2', '1.5', '"high"']) {
      const err = refusal(`plugins: {score: {enabled: [{name: ImageLocality, weight: ${weight}}]}}`);
      assert.equal(err.field, 'plugins.score.enabled[0].weight');
      assert.match(err.message, /must be a positive whole number/);
    }
    const nested = refusal(`
kind: KubeSchedulerConfiguration
apiVersion: kubescheduler.config.k8s.io/v1
profiles: [{plugins: {score: {enabled: [{name: ImageLocality, weight: 0}]}}}]`);
    assert.equal(nested.field, 'profiles[0].plugins.score.enabled[0].weight');
    assert.match(
      refusal('plugins: {filter: {enabled: [{name: NodePorts, weight: 2}]}}').message,
      /only score plugins take a weight/,
    );
  });

  test('unknown keys and extension points are named', () => {
    assert.equal(refusal('percentOfNodesToScore: 10').field, 'percentOfNodesToScore');
    assert.match(
      refusal('percentOfNodesToScore: 10').message,
      /unknown field; known: schedulerName, percentageOfNodesToScore/,
    );
    assert.equal(refusal('plugins: {reserve: {enabled: [VolumeBinding]}}').field, 'plugins.reserve');
    assert.equal(refusal('plugins: {score: {enable: [ImageLocality]}}').field, 'plugins.score.enable');
    assert.equal(refusal('percentageOfNodesToScore: 150').field, 'percentageOfNodesToScore');
    assert.equal(
      refusal(
        'kind: KubeSchedulerConfiguration\napiVersion: kubescheduler.config.k8s.io/v1\nprofiles: [{}, {}]',
      ).field,
      'profiles',
    );
    assert.match(refusal('plugins: [').message, /not YAML/);
  });

  test('feasible nodes to find: all below 100 nodes, adaptive 50 − n/125 % (≥ 5 %), at least 100', () => {
    assert.equal(feasibleNodesToFind(0, 50), 50);
    assert.equal(feasibleNodesToFind(0, 1000), 420);
    assert.equal(feasibleNodesToFind(0, 5000), 500);
    assert.equal(feasibleNodesToFind(0, 6000), 300);
    assert.equal(feasibleNodesToFind(0, 100_000), 5000);
    assert.equal(feasibleNodesToFind(10, 500), 100);
    assert.equal(feasibleNodesToFind(100, 5000), 5000);
  });
});
