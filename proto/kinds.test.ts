import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { InvalidArgumentError } from './errors.js';
import { KINDS, kindForApiVersion, kindForEnvelopeField, kindInfoOf, resolveKind } from './kinds.js';
import { messages } from './gen/messages.js';

describe('resolveKind', () => {
  const table: [string, string][] = [
    ['Pod', 'Pod'],
    ['pod', 'Pod'],
    ['pods', 'Pod'],
    ['po', 'Pod'],
    ['POD', 'Pod'],
    ['pods.', 'Pod'],
    ['deployments.apps', 'Deployment'],
    ['deployment.apps', 'Deployment'],
    ['deploy', 'Deployment'],
    ['deploy.v1.apps', 'Deployment'],
    ['rs', 'ReplicaSet'],
    ['ds', 'DaemonSet'],
    ['svc', 'Service'],
    ['cm', 'ConfigMap'],
    ['no', 'Node'],
    ['ns', 'Namespace'],
    ['ev', 'Event'],
    ['ep', 'Endpoints'],
    ['endpoints', 'Endpoints'],
    ['secret', 'Secret'],
    ['jobs.batch', 'Job'],
    ['job', 'Job'],
    ['cj', 'CronJob'],
    ['cronjobs.batch', 'CronJob'],
    ['lease', 'Lease'],
    ['leases.coordination.k8s.io', 'Lease'],
    ['leases.v1.coordination.k8s.io', 'Lease'],
    ['pc', 'PriorityClass'],
    ['priorityclasses.scheduling.k8s.io', 'PriorityClass'],
    ['endpointslices', 'EndpointSlice'],
    ['endpointslice.discovery.k8s.io', 'EndpointSlice'],
  ];
  for (const [name, kind] of table) {
    test(`${name} → ${kind}`, () => assert.equal(resolveKind(name).kind, kind));
  }

  for (const bad of [
    'pdo',
    'deployments.batch',
    'pods.apps',
    'deploy.v2.apps',
    '',
    'a.b.c.d',
    'leases.k8s.io',
    'leases.v2.coordination.k8s.io',
  ]) {
    test(`"${bad}" is rejected, listing the valid kinds`, () => {
      assert.throws(
        () => resolveKind(bad),
        (err: unknown) =>
          err instanceof InvalidArgumentError &&
          err.field === 'kind' &&
          /valid kinds: Namespace \(namespaces, ns\); .*Deployment \(deployments, deploy\)/.test(err.message),
      );
    });
  }
});

describe('kindForApiVersion', () => {
  test('accepts each kind under its own apiVersion', () => {
    for (const info of KINDS) assert.equal(kindForApiVersion(info.apiVersion, info.kind), info);
  });
  test('a known kind under the wrong apiVersion names apiVersion and the right value', () => {
    assert.throws(
      () => kindForApiVersion('v1', 'Deployment'),
      (err: unknown) =>
        err instanceof InvalidArgumentError && err.field === 'apiVersion' && /apps\/v1/.test(err.message),
    );
    assert.throws(() => kindForApiVersion('extensions/v1beta1', 'Deployment'), /use "apiVersion: apps\/v1"/);
  });
  test('a kind in the wrong case gets a suggestion', () => {
    assert.throws(
      () => kindForApiVersion('v1', 'pod'),
      (err: unknown) =>
        err instanceof InvalidArgumentError && err.field === 'kind' && /did you mean "Pod"/.test(err.message),
    );
  });
});

describe('the registry', () => {
  test('matches kubectl: versions, scope, short names, resources', () => {
    const summary = Object.fromEntries(
      KINDS.map((info) => [
        info.kind,
        [info.apiVersion, info.namespaced, info.shortNames.join(','), info.resource],
      ]),
    );
    assert.deepEqual(summary, {
      Namespace: ['v1', false, 'ns', 'namespaces'],
      Node: ['v1', false, 'no', 'nodes'],
      Pod: ['v1', true, 'po', 'pods'],
      ReplicaSet: ['apps/v1', true, 'rs', 'replicasets.apps'],
      Deployment: ['apps/v1', true, 'deploy', 'deployments.apps'],
      DaemonSet: ['apps/v1', true, 'ds', 'daemonsets.apps'],
      Job: ['batch/v1', true, '', 'jobs.batch'],
      Service: ['v1', true, 'svc', 'services'],
      Endpoints: ['v1', true, 'ep', 'endpoints'],
      ConfigMap: ['v1', true, 'cm', 'configmaps'],
      Secret: ['v1', true, '', 'secrets'],
      Event: ['v1', true, 'ev', 'events'],
      CronJob: ['batch/v1', true, 'cj', 'cronjobs.batch'],
      Lease: ['coordination.k8s.io/v1', true, '', 'leases.coordination.k8s.io'],
      PriorityClass: ['scheduling.k8s.io/v1', false, 'pc', 'priorityclasses.scheduling.k8s.io'],
      EndpointSlice: ['discovery.k8s.io/v1', true, '', 'endpointslices.discovery.k8s.io'],
      ServiceAccount: ['v1', true, 'sa', 'serviceaccounts'],
    });
  });

  test('every kind has its message and its field in the Object envelope, and nothing else is there', () => {
    const envelope = messages.Object;
    assert.deepEqual(
      envelope.fields.map((field) => field.name).sort(),
      KINDS.map((info) => info.envelopeField).sort(),
    );
    for (const info of KINDS) {
      assert.equal(info.message.name, info.kind);
      assert.equal(envelope.field(info.envelopeField)?.type, info.message);
      assert.equal(kindForEnvelopeField(info.envelopeField), info);
      assert.equal(kindInfoOf(info.kind), info);
      assert.ok(info.message.field('metadata'), `${info.kind} has metadata`);
    }
  });
});
