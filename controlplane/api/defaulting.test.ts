import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type {
  DaemonSet,
  Deployment,
  Job,
  KubeObject,
  Namespace,
  Pod,
  ReplicaSet,
  Secret,
  Service,
} from '../../proto/gen/types.js';
import { parseObject } from '../../proto/objects.js';
import { defaultImagePullPolicy } from './defaulting.js';
import { defaultObject, defaultObjectInPlace } from './kinds/index.js';

describe('imagePullPolicy by image reference', () => {
  const table: [string, string][] = [
    ['nginx', 'Always'],
    ['nginx:latest', 'Always'],
    ['registry.local:5000/web', 'Always'],
    ['registry.local:5000/web:latest', 'Always'],
    ['nginx:1.25', 'IfNotPresent'],
    ['registry.local:5000/web:1', 'IfNotPresent'],
    ['nginx@sha256:' + 'a'.repeat(64), 'IfNotPresent'],
  ];
  for (const [image, policy] of table) {
    test(`${image} → ${policy}`, () => assert.equal(defaultImagePullPolicy(image), policy));
  }
});

describe('defaultObject', () => {
  test('a Pod gets restartPolicy, grace period, dnsPolicy, scheduler, service account, pull policy, protocol, probe timings and requests from limits', () => {
    const pod: Pod = {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: 'p' },
      spec: {
        containers: [
          {
            name: 'a',
            image: 'web:1',
            ports: [{ containerPort: 80 }, { containerPort: 53, protocol: 'UDP' }],
            resources: { limits: { cpu: '1', memory: '1Gi' }, requests: { cpu: '500m' } },
            livenessProbe: { httpGet: { port: 80 } },
            env: [{ name: 'N', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } }],
          },
        ],
        initContainers: [{ name: 'i', image: 'busybox' }],
        volumes: [
          { name: 'c', configMap: { name: 'cm' } },
          { name: 's', secret: { secretName: 's', defaultMode: 0o400 } },
        ],
      },
    };
    const defaulted = defaultObject(pod);
    assert.deepEqual(defaulted.spec, {
      containers: [
        {
          name: 'a',
          image: 'web:1',
          imagePullPolicy: 'IfNotPresent',
          ports: [
            { containerPort: 80, protocol: 'TCP' },
            { containerPort: 53, protocol: 'UDP' },
          ],
          resources: { limits: { cpu: '1', memory: '1Gi' }, requests: { cpu: '500m', memory: '1Gi' } },
          livenessProbe: {
            httpGet: { port: 80, scheme: 'HTTP' },
            timeoutSeconds: 1,
            periodSeconds: 10,
            successThreshold: 1,
            failureThreshold: 3,
          },
          env: [{ name: 'N', valueFrom: { fieldRef: { fieldPath: 'metadata.name', apiVersion: 'v1' } } }],
        },
      ],
      initContainers: [{ name: 'i', image: 'busybox', imagePullPolicy: 'Always' }],
      volumes: [
        { name: 'c', configMap: { name: 'cm', defaultMode: 0o644 } },
        { name: 's', secret: { secretName: 's', defaultMode: 0o400 } },
      ],
      restartPolicy: 'Always',
      dnsPolicy: 'ClusterFirst',
      schedulerName: 'default-scheduler',
      serviceAccountName: 'default',
      terminationGracePeriodSeconds: 30,
    });
    assert.equal(pod.spec.restartPolicy, undefined, 'the input is not changed');
  });

  test('the copy shares nothing with the input, and a "__proto__" key stays a plain key', () => {
    const labels = JSON.parse('{"__proto__": {"polluted": "yes"}, "app": "web"}') as Record<string, string>;
    const input: Pod = {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: 'p', labels },
      spec: { containers: [{ name: 'c', image: 'x', args: ['a'] }] },
    };
    const pod = defaultObject(input);
    assert.notEqual(pod.metadata, input.metadata);
    assert.notEqual(pod.metadata.labels, labels);
    assert.deepEqual(Object.keys(pod.metadata.labels!), ['__proto__', 'app']);
    assert.equal(Object.getPrototypeOf(pod.metadata.labels), Object.prototype);
    assert.equal((pod.metadata.labels as Record<string, unknown>)['polluted'], undefined);
    pod.spec.containers![0]!.args!.push('b');
    assert.deepEqual(input.spec.containers![0]!.args, ['a']);
  });

  test('explicit values, including zeros, are kept', () => {
    const pod = defaultObject<Pod>({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: 'p' },
      spec: {
        containers: [{ name: 'a', image: 'web', imagePullPolicy: 'Never' }],
        restartPolicy: 'Never',
        terminationGracePeriodSeconds: 0,
      },
    });
    assert.equal(pod.spec.restartPolicy, 'Never');
    assert.equal(pod.spec.terminationGracePeriodSeconds, 0);
    assert.equal(pod.spec.containers![0]!.imagePullPolicy, 'Never');
  });

  test('a Deployment gets replicas 1, RollingUpdate 25%/25%, history 10 and a defaulted template', () => {
    const deployment = defaultObject<Deployment>({
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name: 'd' },
      spec: {
        selector: { matchLabels: { a: 'b' } },
        template: { spec: { containers: [{ name: 'c', image: 'x:1' }] } },
      },
    });
    assert.equal(deployment.spec.replicas, 1);
    assert.deepEqual(deployment.spec.strategy, {
      type: 'RollingUpdate',
      rollingUpdate: { maxUnavailable: '25%', maxSurge: '25%' },
    });
    assert.equal(deployment.spec.revisionHistoryLimit, 10);
    assert.equal(deployment.spec.progressDeadlineSeconds, 600);
    assert.equal(deployment.spec.template?.spec?.restartPolicy, 'Always');
    const zero = defaultObject<Deployment>({
      ...deployment,
      spec: { ...deployment.spec, replicas: 0, strategy: { type: 'Recreate' } },
    });
    assert.equal(zero.spec.replicas, 0);
    assert.deepEqual(zero.spec.strategy, { type: 'Recreate' });
  });

  test('ReplicaSet and DaemonSet defaults', () => {
    const rs = defaultObject<ReplicaSet>({
      apiVersion: 'apps/v1',
      kind: 'ReplicaSet',
      metadata: { name: 'r' },
      spec: {},
    });
    assert.equal(rs.spec.replicas, 1);
    const ds = defaultObject<DaemonSet>({
      apiVersion: 'apps/v1',
      kind: 'DaemonSet',
      metadata: { name: 'd' },
      spec: {},
    });
    assert.deepEqual(ds.spec.updateStrategy, {
      type: 'RollingUpdate',
      rollingUpdate: { maxUnavailable: 1, maxSurge: 0 },
    });
    assert.equal(ds.spec.revisionHistoryLimit, 10);
  });

  test('Job: backoffLimit 6, completions 1 and parallelism 1; a work queue keeps completions unset', () => {
    const job = defaultObject<Job>({
      apiVersion: 'batch/v1',
      kind: 'Job',
      metadata: { name: 'j' },
      spec: {},
    });
    assert.equal(job.spec.backoffLimit, 6);
    assert.equal(job.spec.completions, 1);
    assert.equal(job.spec.parallelism, 1);
    assert.equal(job.spec.completionMode, 'NonIndexed');
    const queue = defaultObject<Job>({
      apiVersion: 'batch/v1',
      kind: 'Job',
      metadata: { name: 'j' },
      spec: { parallelism: 4 },
    });
    assert.equal(queue.spec.completions, undefined);
    assert.equal(queue.spec.parallelism, 4);
    const none = defaultObject<Job>({
      apiVersion: 'batch/v1',
      kind: 'Job',
      metadata: { name: 'j' },
      spec: { backoffLimit: 0 },
    });
    assert.equal(none.spec.backoffLimit, 0);
  });

  test('Service: ClusterIP, no session affinity, TCP and targetPort = port', () => {
    const service = defaultObject<Service>({
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name: 's' },
      spec: { ports: [{ port: 80 }, { port: 53, protocol: 'UDP', targetPort: 'dns' }] },
    });
    assert.equal(service.spec.type, 'ClusterIP');
    assert.equal(service.spec.sessionAffinity, 'None');
    assert.deepEqual(service.spec.ports, [
      { port: 80, protocol: 'TCP', targetPort: 80 },
      { port: 53, protocol: 'UDP', targetPort: 'dns' },
    ]);
  });

  test('Secret: type Opaque, stringData merged into data as base64 and dropped', () => {
    const secret = defaultObject<Secret>({
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { name: 's' },
      data: { a: 'eA==', b: 'eA==' },
      stringData: { b: 'hunter2', c: 'ü' },
    });
    assert.equal(secret.type, 'Opaque');
    assert.equal(secret.stringData, undefined);
    assert.deepEqual(secret.data, {
      a: 'eA==',
      b: Buffer.from('hunter2').toString('base64'),
      c: Buffer.from('ü').toString('base64'),
    });
  });

  test('Namespace starts Active', () => {
    const ns = defaultObject<Namespace>({
      apiVersion: 'v1',
      kind: 'Namespace',
      metadata: { name: 'n' },
      spec: {},
    });
    assert.equal(ns.status?.phase, 'Active');
  });

  test('defaulting is idempotent and its output survives the codec unchanged', () => {
    const objects: KubeObject[] = [
      {
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: { name: 'p' },
        spec: { containers: [{ name: 'a', image: 'x', ports: [{ containerPort: 1 }] }] },
      },
      { apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'd' }, spec: {} },
      { apiVersion: 'batch/v1', kind: 'Job', metadata: { name: 'j' }, spec: {} },
      { apiVersion: 'v1', kind: 'Service', metadata: { name: 's' }, spec: { ports: [{ port: 1 }] } },
      { apiVersion: 'v1', kind: 'Secret', metadata: { name: 's' }, stringData: { a: 'b' } },
    ];
    for (const obj of objects) {
      const once = defaultObject(obj);
      assert.deepEqual(defaultObject(once), once, obj.kind);
      assert.deepEqual(parseObject(once), once, obj.kind);
    }
  });
});

describe('defaultObjectInPlace', () => {
  const undefaulted = (): KubeObject[] => [
    {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: 'p', labels: { app: 'web' } },
      spec: {
        containers: [
          {
            name: 'a',
            image: 'x',
            ports: [{ containerPort: 1 }],
            resources: { limits: { cpu: '1' } },
            readinessProbe: { httpGet: { port: 1 } },
            env: [{ name: 'N', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } }],
          },
        ],
        initContainers: [{ name: 'i', image: 'y:latest', startupProbe: { exec: { command: ['true'] } } }],
        volumes: [
          { name: 'v', hostPath: { path: '/x' } },
          { name: 'c', configMap: { name: 'cm' } },
          { name: 's', secret: { secretName: 's' } },
        ],
      },
    },
    { apiVersion: 'apps/v1', kind: 'ReplicaSet', metadata: { name: 'r' }, spec: { template: {} } },
    {
      apiVersion: 'batch/v1',
      kind: 'Job',
      metadata: { name: 'jt' },
      spec: {
        template: { spec: { containers: [{ name: 'a', image: 'x', ports: [{ containerPort: 1 }] }] } },
      },
    },
    { apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'd' }, spec: {} },
    { apiVersion: 'apps/v1', kind: 'DaemonSet', metadata: { name: 'ds' }, spec: {} },
    { apiVersion: 'batch/v1', kind: 'Job', metadata: { name: 'j' }, spec: {} },
    { apiVersion: 'v1', kind: 'Service', metadata: { name: 's' }, spec: { ports: [{ port: 1 }] } },
    {
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { name: 's' },
      data: { a: 'YQ==' },
      stringData: { b: 'b' },
    },
    { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'n' }, spec: {} },
    { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'c' }, data: { k: 'v' } },
  ];

  test('gives the same result as defaultObject for every defaulted kind, on the object it was given', () => {
    const inputs = undefaulted();
    const copies = undefaulted().map((obj) => defaultObject(obj));
    inputs.forEach((input, i) => {
      const defaulted = defaultObjectInPlace(input);
      assert.equal(defaulted, input, `${input.kind}: the given object is returned`);
      assert.deepEqual(input, copies[i], `${input.kind}: the given object is the defaulted one`);
    });
  });

  test('is idempotent', () => {
    for (const obj of undefaulted()) {
      const once = structuredClone(defaultObjectInPlace(obj));
      assert.deepEqual(defaultObjectInPlace(obj), once, obj.kind);
    }
  });

  test('defaultObject still changes nothing it was given, nested fields included', () => {
    const inputs = undefaulted();
    const before = structuredClone(inputs);
    for (const input of inputs) defaultObject(input);
    assert.deepEqual(inputs, before);
  });
});
