import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { InternalError, InvalidArgumentError } from './errors.js';
import { messages } from './gen/messages.js';
import type { ConfigMap, Deployment, KubeObject, Pod } from './gen/types.js';
import { KINDS, kindInfoOf } from './kinds.js';
import {
  encodeObjectWithin,
  MAX_OBJECT_BYTES,
  decodeObject,
  encodeObject,
  envelopeBytesWithResourceVersion,
  fromEnvelope,
  parseObject,
  storedStringField,
  toEnvelope,
  withStatusBytes,
} from './objects.js';

/** A Pod with every part of the schema set, including values proto3 would drop if not `optional`. */
export const FULL_POD: Pod = {
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: {
    name: 'web-0',
    generateName: 'web-',
    namespace: 'shop',
    uid: '7c1b6f0e-3a55-4f0c-9a43-1f6a2b3c4d5e',
    resourceVersion: '42',
    generation: 3,
    creationTimestamp: '2026-11-29T04:00:00Z',
    deletionTimestamp: '2026-11-29T05:00:00Z',
    deletionGracePeriodSeconds: 0,
    labels: { app: 'web', 'example.com/tier': 'front' },
    annotations: { note: 'hello' },
    ownerReferences: [
      {
        apiVersion: 'apps/v1',
        kind: 'ReplicaSet',
        name: 'web-abc',
        uid: 'u-1',
        controller: true,
        blockOwnerDeletion: false,
      },
    ],
    finalizers: ['skiff.io/cleanup'],
  },
  spec: {
    volumes: [
      { name: 'scratch', emptyDir: {} },
      { name: 'mem', emptyDir: { medium: 'Memory', sizeLimit: '64Mi' } },
      { name: 'host', hostPath: { path: '/var/log', type: '' } },
      {
        name: 'conf',
        configMap: {
          name: 'web-conf',
          items: [{ key: 'a', path: 'a.conf', mode: 0o644 }],
          defaultMode: 0,
          optional: false,
        },
      },
      { name: 'creds', secret: { secretName: 'web-creds', optional: true } },
    ],
    initContainers: [{ name: 'init', image: 'busybox:1.36', command: ['sh', '-c', 'true'] }],
    containers: [
      {
        name: 'app',
        image: 'registry.local/web:1.2',
        command: ['/bin/web'],
        args: ['--port', '8080'],
        workingDir: '/srv',
        ports: [
          { name: 'http', containerPort: 8080, protocol: 'TCP', hostPort: 80, hostIP: '127.0.0.1' },
          { containerPort: 9090, protocol: 'UDP' },
        ],
        envFrom: [
          { prefix: 'CFG_', configMapRef: { name: 'web-conf', optional: false } },
          { secretRef: { name: 'web-creds' } },
        ],
        env: [
          { name: 'PLAIN', value: 'x' },
          {
            name: 'FROM_CM',
            valueFrom: { configMapKeyRef: { name: 'web-conf', key: 'mode', optional: true } },
          },
          { name: 'FROM_SECRET', valueFrom: { secretKeyRef: { name: 'web-creds', key: 'token' } } },
          { name: 'POD_NAME', valueFrom: { fieldRef: { apiVersion: 'v1', fieldPath: 'metadata.name' } } },
          {
            name: 'CPU',
            valueFrom: { resourceFieldRef: { containerName: 'app', resource: 'limits.cpu', divisor: '1m' } },
          },
        ],
        resources: { requests: { cpu: '250m', memory: '64Mi' }, limits: { cpu: '1', memory: '128Mi' } },
        volumeMounts: [
          { name: 'scratch', mountPath: '/tmp' },
          { name: 'conf', mountPath: '/etc/web', readOnly: true, subPath: 'a.conf' },
        ],
        livenessProbe: {
          httpGet: {
            path: '/healthz',
            port: 'http',
            scheme: 'HTTP',
            host: '127.0.0.1',
            httpHeaders: [{ name: 'X-Probe', value: '1' }],
          },
          initialDelaySeconds: 5,
          timeoutSeconds: 2,
          periodSeconds: 10,
          successThreshold: 1,
          failureThreshold: 3,
          terminationGracePeriodSeconds: 0,
        },
        readinessProbe: { tcpSocket: { port: 8080 }, periodSeconds: 3 },
        startupProbe: { exec: { command: ['cat', '/tmp/ready'] }, failureThreshold: 30 },
        lifecycle: { postStart: { exec: { command: ['echo', 'hi'] } }, preStop: { sleep: { seconds: 5 } } },
        terminationMessagePath: '/dev/termination-log',
        imagePullPolicy: 'IfNotPresent',
        securityContext: {
          capabilities: { add: ['NET_BIND_SERVICE'], drop: ['ALL'] },
          privileged: false,
          runAsUser: 0,
          runAsGroup: 1000,
          runAsNonRoot: false,
          readOnlyRootFilesystem: true,
          allowPrivilegeEscalation: false,
        },
        stdin: true,
        tty: true,
      },
    ],
    restartPolicy: 'OnFailure',
    terminationGracePeriodSeconds: 0,
    activeDeadlineSeconds: 600,
    dnsPolicy: 'ClusterFirst',
    nodeSelector: { 'kubernetes.io/os': 'linux' },
    serviceAccountName: 'default',
    nodeName: 'node-1',
    hostNetwork: true,
    hostPID: true,
    hostIPC: true,
    securityContext: {
      runAsUser: 1000,
      runAsGroup: 0,
      runAsNonRoot: true,
      supplementalGroups: [0, 5],
      fsGroup: 2000,
      sysctls: [{ name: 'net.core.somaxconn', value: '1024' }],
    },
    hostname: 'web-0',
    subdomain: 'web',
    affinity: {
      nodeAffinity: {
        requiredDuringSchedulingIgnoredDuringExecution: {
          nodeSelectorTerms: [
            {
              matchExpressions: [{ key: 'zone', operator: 'In', values: ['a', 'b'] }],
              matchFields: [{ key: 'metadata.name', operator: 'NotIn', values: ['node-9'] }],
            },
          ],
        },
        preferredDuringSchedulingIgnoredDuringExecution: [
          { weight: 10, preference: { matchExpressions: [{ key: 'ssd', operator: 'Exists' }] } },
        ],
      },
      podAffinity: {
        requiredDuringSchedulingIgnoredDuringExecution: [
          {
            labelSelector: { matchLabels: { app: 'cache' } },
            topologyKey: 'kubernetes.io/hostname',
            namespaces: ['shop'],
          },
        ],
      },
      podAntiAffinity: {
        preferredDuringSchedulingIgnoredDuringExecution: [
          {
            weight: 100,
            podAffinityTerm: {
              labelSelector: { matchExpressions: [{ key: 'app', operator: 'In', values: ['web'] }] },
              topologyKey: 'zone',
              namespaceSelector: {},
            },
          },
        ],
      },
    },
    schedulerName: 'default-scheduler',
    tolerations: [
      { key: 'dedicated', operator: 'Equal', value: 'web', effect: 'NoSchedule' },
      { operator: 'Exists', effect: 'NoExecute', tolerationSeconds: 0 },
    ],
    priorityClassName: 'high',
    priority: 0,
  },
  status: {
    phase: 'Running',
    conditions: [
      {
        type: 'Ready',
        status: 'True',
        lastTransitionTime: '2026-11-29T04:00:05Z',
        reason: 'Ok',
        message: 'ready',
      },
    ],
    message: 'all good',
    reason: 'Started',
    nominatedNodeName: 'node-2',
    hostIP: '10.0.0.1',
    hostIPs: [{ ip: '10.0.0.1' }],
    podIP: '10.244.0.5',
    podIPs: [{ ip: '10.244.0.5' }, { ip: 'fd00::5' }],
    startTime: '2026-11-29T04:00:01Z',
    initContainerStatuses: [
      {
        name: 'init',
        state: {
          terminated: {
            exitCode: 0,
            reason: 'Completed',
            startedAt: '2026-11-29T04:00:01Z',
            finishedAt: '2026-11-29T04:00:02Z',
          },
        },
      },
    ],
    containerStatuses: [
      {
        name: 'app',
        state: { running: { startedAt: '2026-11-29T04:00:03Z' } },
        lastState: {
          terminated: {
            exitCode: 137,
            signal: 9,
            reason: 'OOMKilled',
            message: 'killed',
            startedAt: '2026-11-29T03:59:00Z',
            finishedAt: '2026-11-29T04:00:00Z',
            containerID: 'skiff://abc',
          },
        },
        ready: true,
        restartCount: 2,
        image: 'registry.local/web:1.2',
        imageID: 'sha256:0123',
        containerID: 'skiff://def',
        started: true,
      },
    ],
    qosClass: 'Burstable',
  },
};

export const FULL_DEPLOYMENT: Deployment = {
  apiVersion: 'apps/v1',
  kind: 'Deployment',
  metadata: { name: 'web', namespace: 'shop', labels: { app: 'web' }, generation: 7 },
  spec: {
    replicas: 0,
    selector: {
      matchLabels: { app: 'web' },
      matchExpressions: [{ key: 'tier', operator: 'NotIn', values: ['db'] }],
    },
    template: { metadata: { labels: { app: 'web' } }, spec: FULL_POD.spec },
    strategy: { type: 'RollingUpdate', rollingUpdate: { maxUnavailable: 0, maxSurge: '25%' } },
    minReadySeconds: 5,
    revisionHistoryLimit: 0,
    paused: true,
    progressDeadlineSeconds: 600,
  },
  status: {
    observedGeneration: 7,
    replicas: 3,
    updatedReplicas: 2,
    readyReplicas: 1,
    availableReplicas: 1,
    unavailableReplicas: 2,
    conditions: [
      { type: 'Available', status: 'False', reason: 'MinimumReplicasUnavailable', observedGeneration: 7 },
    ],
    collisionCount: 0,
  },
};

function invalid(fn: () => unknown, field: string, message: RegExp): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof InvalidArgumentError, `expected InvalidArgumentError, got ${String(err)}`);
    assert.equal(err.field, field);
    assert.match(err.message, message);
    return true;
  });
}

describe('object round trips', () => {
  for (const obj of [FULL_POD, FULL_DEPLOYMENT] as KubeObject[]) {
    test(`a fully populated ${obj.kind} survives parse, encode and decode unchanged`, () => {
      const parsed = parseObject(structuredClone(obj));
      assert.deepEqual(parsed, obj);
      assert.deepEqual(decodeObject(obj.kind, encodeObject(parsed)), obj);
    });

    test(`a fully populated ${obj.kind} survives the envelope through protobuf binary`, () => {
      const wire = messages.Object.encode(toEnvelope(obj));
      assert.deepEqual(fromEnvelope(messages.Object.decode(wire)), obj);
    });
  }

  test('IntOrString keeps number and string forms, including zero', () => {
    const parsed = parseObject(FULL_DEPLOYMENT) as Deployment;
    assert.equal(parsed.spec.strategy?.rollingUpdate?.maxUnavailable, 0);
    assert.equal(parsed.spec.strategy?.rollingUpdate?.maxSurge, '25%');
    const envelope = toEnvelope(parsed);
    assert.deepEqual((envelope['deployment']!['spec'] as any).strategy.rollingUpdate, {
      maxUnavailable: { intVal: 0 },
      maxSurge: { strVal: '25%' },
    });
  });

  test('optional fields keep an explicit zero, plain fields drop it', () => {
    const dep = parseObject({
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name: 'a' },
      spec: { replicas: 0, minReadySeconds: 0, paused: false },
    }) as Deployment;
    assert.deepEqual(dep.spec, { replicas: 0 });
    const unset = parseObject({
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name: 'a' },
      spec: {},
    }) as Deployment;
    assert.equal('replicas' in unset.spec, false);
  });

  test('quantities may be bare numbers, as in Kubernetes manifests', () => {
    const pod = parseObject({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: 'p' },
      spec: {
        containers: [
          {
            name: 'c',
            image: 'i',
            resources: { limits: { cpu: 1, memory: 536870912 }, requests: { cpu: 0.5 } },
          },
        ],
        volumes: [{ name: 'v', emptyDir: { sizeLimit: 1000 } }],
      },
    }) as Pod;
    assert.deepEqual(pod.spec.containers![0]!.resources, {
      limits: { cpu: '1', memory: '536870912' },
      requests: { cpu: '0.5' },
    });
    assert.equal(pod.spec.volumes![0]!.emptyDir!.sizeLimit, '1000');
    invalid(
      () =>
        parseObject({
          apiVersion: 'v1',
          kind: 'Pod',
          metadata: { name: 'p' },
          spec: { containers: [{ name: 'c', env: [{ name: 'A', value: 1 }] }] },
        }),
      'spec.containers[0].env[0].value',
      /expected a string, got number 1/,
    );
  });

  test('a lone UTF-16 surrogate becomes U+FFFD, as Kubernetes decodes it, and the object encodes', () => {
    const cm = {
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name: 'c', labels: { ['k\ud800']: 'v' }, annotations: { note: 'a\udc00b' } },
      data: { text: 'x\ud83dy', pair: '\ud83d\ude00' },
    };
    const parsed = parseObject(cm) as ConfigMap;
    assert.equal(parsed.data?.text, 'x\ufffdy');
    assert.equal(parsed.data?.pair, '\ud83d\ude00', 'a surrogate pair is left alone');
    assert.equal(parsed.metadata.annotations?.note, 'a\ufffdb');
    assert.deepEqual(Object.keys(parsed.metadata.labels ?? {}), ['k\ufffd']);
    assert.deepEqual(decodeObject('ConfigMap', encodeObject(parsed)), parsed);
  });

  test('Secret and ConfigMap bytes round trip as base64', () => {
    const secret = {
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { name: 's' },
      type: 'Opaque',
      data: { token: Buffer.from('hunter2\u0000\xff').toString('base64') },
      immutable: false,
    };
    const cm = {
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name: 'c' },
      data: { a: 'b' },
      binaryData: { bin: 'AAEC' },
    };
    for (const obj of [secret, cm]) {
      const parsed = parseObject(obj);
      assert.deepEqual(parsed, obj);
      assert.deepEqual(decodeObject(parsed.kind, encodeObject(parsed)), obj);
    }
  });

  test('normalisation: metadata and spec always present, nulls and empty lists dropped, key order fixed', () => {
    const pod = parseObject({
      kind: 'Pod',
      apiVersion: 'v1',
      metadata: { name: 'p', creationTimestamp: null, labels: {} },
      spec: { containers: [], nodeName: '' },
      status: {},
    });
    assert.deepEqual(pod, { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'p' }, spec: {}, status: {} });
    assert.deepEqual(Object.keys(pod), ['apiVersion', 'kind', 'metadata', 'spec', 'status']);
    const ns = parseObject({ apiVersion: 'v1', kind: 'Namespace' });
    assert.deepEqual(ns, { apiVersion: 'v1', kind: 'Namespace', metadata: {}, spec: {} });
    const cm = parseObject({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'c' } });
    assert.equal('spec' in cm, false);
  });

  test('decoding bytes that are not the message is an internal error naming the kind', () => {
    assert.throws(() => decodeObject('Pod', Uint8Array.from([0x0a, 0xff, 0xff])), /decode stored Pod/);
  });
});

describe('parseObject rejects bad input, naming the field', () => {
  const pod = (container: Record<string, unknown>, extra: Record<string, unknown> = {}) => ({
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: 'p' },
    spec: { containers: [{ name: 'c', image: 'i', ...container }], ...extra },
  });
  const deployment = (container: Record<string, unknown>) => ({
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name: 'd' },
    spec: { template: { spec: { containers: [{ name: 'c', image: 'i', ...container }] } } },
  });

  const cases: { name: string; input: unknown; field: string; message: RegExp }[] = [
    {
      name: 'unknown nested field, with a suggestion',
      input: deployment({ imagePullPolicyy: 'Always' }),
      field: 'spec.template.spec.containers[0].imagePullPolicyy',
      message: /"imagePullPolicyy" is not a field of Container; did you mean "imagePullPolicy"\?/,
    },
    {
      name: 'unknown top-level field',
      input: { ...pod({}), extra: 1 },
      field: 'extra',
      message: /not a field of Pod/,
    },
    {
      name: 'string where an integer is expected',
      input: pod({ ports: [{ containerPort: '80' }] }),
      field: 'spec.containers[0].ports[0].containerPort',
      message: /expected an integer \(int32\), got string "80"/,
    },
    {
      name: 'non-integer for int32',
      input: pod({ ports: [{ containerPort: 80.5 }] }),
      field: 'spec.containers[0].ports[0].containerPort',
      message: /expected an integer/,
    },
    {
      name: 'int32 out of range',
      input: pod({ ports: [{ containerPort: 2 ** 31 }] }),
      field: 'spec.containers[0].ports[0].containerPort',
      message: /out of range for int32/,
    },
    {
      name: 'int64 beyond the safe range',
      input: pod({}, { activeDeadlineSeconds: 2 ** 60 }),
      field: 'spec.activeDeadlineSeconds',
      message: /out of range for int64/,
    },
    {
      name: 'object where a list is expected',
      input: pod({ args: { a: 1 } }),
      field: 'spec.containers[0].args',
      message: /expected a list/,
    },
    {
      name: 'scalar where an object is expected',
      input: pod({ resources: 'big' }),
      field: 'spec.containers[0].resources',
      message: /expected an object \(ResourceRequirements\)/,
    },
    {
      name: 'list where an object is expected',
      input: { apiVersion: 'v1', kind: 'Pod', metadata: [] },
      field: 'metadata',
      message: /expected an object \(ObjectMeta\), got a list/,
    },
    {
      name: 'number in a string map',
      input: pod({}, { nodeSelector: { zone: 1 } }),
      field: 'spec.nodeSelector[zone]',
      message: /expected a string/,
    },
    {
      name: 'a quantity that is neither string nor number',
      input: pod({ resources: { limits: { cpu: true } } }),
      field: 'spec.containers[0].resources.limits[cpu]',
      message: /expected a string, got boolean/,
    },
    {
      name: 'string for a boolean',
      input: pod({ stdin: 'yes' }),
      field: 'spec.containers[0].stdin',
      message: /expected a boolean/,
    },
    {
      name: 'null list item',
      input: pod({ args: ['a', null] }),
      field: 'spec.containers[0].args[1]',
      message: /must not be null/,
    },
    {
      name: 'boolean for IntOrString',
      input: pod({ livenessProbe: { tcpSocket: { port: true } } }),
      field: 'spec.containers[0].livenessProbe.tcpSocket.port',
      message: /integer or a string/,
    },
    {
      name: 'missing required field',
      input: pod({ name: undefined }),
      field: 'spec.containers[0].name',
      message: /required field is missing/,
    },
    {
      name: 'empty required field',
      input: pod({ env: [{ name: '', value: 'x' }] }),
      field: 'spec.containers[0].env[0].name',
      message: /required/,
    },
    {
      name: 'bad base64',
      input: { apiVersion: 'v1', kind: 'Secret', metadata: { name: 's' }, data: { k: 'abc' } },
      field: 'data[k]',
      message: /base64/,
    },
    {
      name: 'missing kind',
      input: { apiVersion: 'v1', metadata: { name: 'x' } },
      field: 'kind',
      message: /kind is required/,
    },
    {
      name: 'unknown kind',
      input: { apiVersion: 'v1', kind: 'Pdo' },
      field: 'kind',
      message: /unknown kind "Pdo"; valid kinds: Namespace/,
    },
    {
      name: 'missing apiVersion',
      input: { kind: 'Pod' },
      field: 'apiVersion',
      message: /apiVersion is required; use "apiVersion: v1"/,
    },
    {
      name: 'wrong apiVersion',
      input: { apiVersion: 'v1', kind: 'Deployment' },
      field: 'apiVersion',
      message: /use "apiVersion: apps\/v1"/,
    },
    {
      name: 'non-string kind',
      input: { apiVersion: 'v1', kind: 5 },
      field: 'kind',
      message: /expected a string/,
    },
    {
      name: '__proto__ key is an unknown field',
      input: JSON.parse('{"apiVersion":"v1","kind":"Pod","__proto__":{"x":1}}'),
      field: '__proto__',
      message: /not a field of Pod/,
    },
  ];
  for (const c of cases) {
    test(c.name, () => invalid(() => parseObject(c.input), c.field, c.message));
  }

  test('a non-object document names what it got', () => {
    assert.throws(
      () => parseObject('hello'),
      /expected a mapping with apiVersion, kind and metadata, got string/,
    );
    assert.throws(() => parseObject(null), InvalidArgumentError);
  });

  test('a "__proto__" map key stays a plain key', () => {
    const cm = parseObject(
      JSON.parse('{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"c"},"data":{"__proto__":"x"}}'),
    );
    assert.equal(Object.getPrototypeOf((cm as any).data), Object.prototype);
    assert.deepEqual(Object.keys((cm as any).data), ['__proto__']);
  });

  test('encodeObject and toEnvelope are as strict as parseObject', () => {
    const bad = pod({ imagePullPolicyy: 'x' }) as unknown as KubeObject;
    invalid(() => encodeObject(bad), 'spec.containers[0].imagePullPolicyy', /not a field of Container/);
    invalid(() => toEnvelope(bad), 'spec.containers[0].imagePullPolicyy', /not a field of Container/);
  });

  test('fromEnvelope checks that exactly one kind is set and required fields are present', () => {
    invalid(() => fromEnvelope({}), 'object', /exactly one kind must be set, found none/);
    invalid(() => fromEnvelope({ pod: {}, service: {} }), 'object', /found pod, service/);
    invalid(
      () => fromEnvelope({ pod: { spec: { containers: [{ image: 'x' }] } } }),
      'spec.containers[0].name',
      /required/,
    );
  });

  test('fromEnvelope reads a decoded message as strictly as parseObject reads its Kubernetes form', () => {
    const decoded = (body: Record<string, unknown>): Record<string, unknown> =>
      messages.Object.decode(messages.Object.encode({ pod: body }));
    // Zero values sent explicitly on the wire are dropped where proto3 has no presence, kept where it has.
    const zeros = fromEnvelope(
      decoded({
        metadata: { name: 'z', namespace: '', generation: 0 },
        spec: {
          priority: 0,
          containers: [{ name: 'c', image: '', ports: [{ containerPort: 80, hostPort: 0 }] }],
        },
      }),
    ) as Pod;
    assert.deepEqual(zeros.metadata, { name: 'z' });
    assert.equal(zeros.spec.priority, 0);
    assert.deepEqual(zeros.spec.containers?.[0], { name: 'c', ports: [{ containerPort: 80 }] });
    invalid(
      () => fromEnvelope(decoded({ metadata: { name: 'p' }, spec: { containers: [{ name: '' }] } })),
      'spec.containers[0].name',
      /read Pod "p": field "spec.containers\[0\].name": required field is missing \(or empty\) in Container/,
    );
    invalid(
      () => fromEnvelope(decoded({ metadata: { name: 'p', generation: 2 ** 53 + 2 } })),
      'metadata.generation',
      /out of range for int64/,
    );
    invalid(
      () =>
        fromEnvelope(
          decoded({ spec: { containers: [{ name: 'c', livenessProbe: { httpGet: { path: '/' } } }] } }),
        ),
      'spec.containers[0].livenessProbe.httpGet.port',
      /^read Pod: field .*required field is missing/,
    );
  });
});

describe('encodeObjectWithin', () => {
  test('an object over the limit is refused naming its largest field; one within it is encoded', () => {
    const configMap = {
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name: 'c', namespace: 'default' },
      data: { small: 'y', 'big.bin': 'x'.repeat(2000) },
    } as unknown as KubeObject;
    assert.ok(encodeObjectWithin(configMap, 'create configmap c', 4096).length > 2000);
    assert.throws(
      () => encodeObjectWithin(configMap, 'create configmap c', 1000),
      (err: unknown) =>
        err instanceof InvalidArgumentError &&
        err.field === 'data[big.bin]' &&
        /create configmap c: the encoded object is \d+ bytes, over the limit of 1000/.test(err.message),
    );
    assert.equal(MAX_OBJECT_BYTES, 1_572_864 - 8 * 1024);
  });

  test('many small fields are blamed together, with their count, and what else the object holds is said', () => {
    const labels = Object.fromEntries(Array.from({ length: 2000 }, (_, i) => [`k${i}`, 'v']));
    const configMap = {
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name: 'c', namespace: 'default', labels },
      data: { a: 'b' },
    } as unknown as KubeObject;
    assert.throws(
      () => encodeObjectWithin(configMap, 'apply ConfigMap c', 1000, configMap, 'and apply adds a copy'),
      (err: unknown) =>
        err instanceof InvalidArgumentError &&
        err.field === 'metadata.labels' &&
        /most of it is metadata\.labels \(2000 entries, about \d+ bytes\), and apply adds a copy:/.test(
          err.message,
        ),
    );
  });
});

describe('envelopeBytesWithResourceVersion', () => {
  /** What the API answered before: the stored message decoded, resourceVersion set, the envelope encoded. */
  function reencoded(kind: string, bytes: Uint8Array, resourceVersion: string): Uint8Array {
    const info = kindInfoOf(kind);
    const message = info.message.decode(bytes) as { metadata?: Record<string, unknown> };
    message.metadata ??= {};
    message.metadata.resourceVersion = resourceVersion;
    return messages.Object.encode({ [info.envelopeField]: message });
  }

  function assertSameEnvelope(kind: string, bytes: Uint8Array, resourceVersion: string): void {
    const spliced = messages.Object.decode(
      envelopeBytesWithResourceVersion(kind as never, bytes, resourceVersion),
    );
    assert.deepStrictEqual(spliced, messages.Object.decode(reencoded(kind, bytes, resourceVersion)));
  }

  test('gives the envelope that decoding, setting resourceVersion and encoding gave', () => {
    for (const obj of [FULL_POD, FULL_DEPLOYMENT] as KubeObject[]) {
      const stored = encodeObject({ ...obj, metadata: { ...obj.metadata, resourceVersion: undefined } });
      assertSameEnvelope(obj.kind, stored, '1234567');
      // A stored resourceVersion is replaced, not kept beside the new one.
      assertSameEnvelope(obj.kind, encodeObject(obj), '99');
      const decoded = fromEnvelope(
        messages.Object.decode(envelopeBytesWithResourceVersion(obj.kind as never, stored, '8')),
      );
      assert.deepEqual(decoded, { ...obj, metadata: { ...obj.metadata, resourceVersion: '8' } });
    }
  });

  test('adds metadata when the stored message has none, and counts resourceVersion in UTF-8 bytes', () => {
    assertSameEnvelope('Namespace', new Uint8Array(0), '5');
    assertSameEnvelope('Pod', encodeObject(FULL_POD), 'é€😀');
  });

  test('length prefixes stay right where they grow by a byte', () => {
    // Sizes around the one- to two- and two- to three-byte varint boundaries of both prefixes.
    for (const size of [100, 115, 120, 125, 126, 127, 128, 16_250, 16_370, 16_380, 16_383, 16_384]) {
      const configMap = {
        apiVersion: 'v1',
        kind: 'ConfigMap',
        metadata: { name: 'c', namespace: 'default', annotations: { a: 'x'.repeat(size % 200) } },
        data: { big: 'y'.repeat(size) },
      } as KubeObject;
      assertSameEnvelope('ConfigMap', encodeObject(configMap), '12');
    }
  });

  test('bytes that are not a message are an internal error naming the kind', () => {
    assert.throws(
      () => envelopeBytesWithResourceVersion('Pod', Uint8Array.from([0x0a, 0xff, 0xff]), '1'),
      (err: unknown) => err instanceof InternalError && /read stored Pod/.test(err.message),
    );
  });
});

describe('withStatusBytes', () => {
  const stored = (obj: KubeObject): Uint8Array =>
    encodeObject({ ...obj, metadata: { ...obj.metadata, resourceVersion: undefined } });

  test('gives what encoding the object with that status gave, and the status as decoding gives it', () => {
    const running = {
      phase: 'Running',
      podIP: '10.244.0.7',
      conditions: [{ type: 'Ready', status: 'True' }],
      containerStatuses: [{ name: 'c', ready: true, restartCount: 0, state: { running: {} } }],
      // what decoding drops: an empty list
      initContainerStatuses: [],
    };
    const { status: _status, ...withoutStatus } = FULL_POD;
    for (const [before, status] of [
      [FULL_POD, running],
      [withoutStatus, running],
      [FULL_POD, undefined],
      [FULL_POD, {}],
    ] as [KubeObject, unknown][]) {
      const spliced = withStatusBytes('Pod', stored(before), status);
      const whole = { ...before, status } as KubeObject;
      if (status === undefined) delete (whole as { status?: unknown }).status;
      assert.deepEqual(Buffer.from(spliced.bytes), Buffer.from(stored(whole)));
      assert.deepEqual(spliced.status, (decodeObject('Pod', spliced.bytes) as Pod).status);
    }
  });

  test("every kind's status is its message's last field, so the spliced bytes are the encoder's", () => {
    for (const info of KINDS) {
      const status = info.message.field('status');
      if (status === undefined) continue;
      assert.equal(status.id, Math.max(...info.message.fields.map((field) => field.id)), info.kind);
    }
  });

  test('reads the status as strictly as an object is read, naming the field; bad bytes are internal', () => {
    assert.throws(
      () =>
        withStatusBytes(
          'Pod',
          stored(FULL_POD),
          { phase: 'Running', podIp: '1.2.3.4' },
          'update status of pod shop/web-0',
        ),
      (err: unknown) =>
        err instanceof InvalidArgumentError &&
        err.field === 'status.podIp' &&
        /^update status of pod shop\/web-0: field "status.podIp": unknown field/.test(err.message),
    );
    assert.throws(
      () => withStatusBytes('Pod', Uint8Array.from([0x0a, 0xff, 0xff]), {}),
      (err: unknown) => err instanceof InternalError && /read the stored Pod/.test(err.message),
    );
  });
});

describe('storedStringField', () => {
  test('reads what decoding gives at the path, without decoding', () => {
    const { nodeName: _nodeName, ...unbound } = FULL_POD.spec;
    for (const pod of [
      FULL_POD,
      { ...FULL_POD, spec: unbound },
      { ...FULL_POD, spec: { ...FULL_POD.spec, nodeName: 'nöde-1' } },
    ] as Pod[]) {
      const bytes = encodeObject(pod);
      assert.equal(
        storedStringField('Pod', bytes, ['spec', 'nodeName']),
        (decodeObject('Pod', bytes) as Pod).spec.nodeName,
      );
      assert.equal(storedStringField('Pod', bytes, ['metadata', 'name']), pod.metadata.name);
    }
    assert.equal(storedStringField('Pod', new Uint8Array(0), ['spec', 'nodeName']), undefined);
    // a message field given twice merges, as a decoder merges it
    const twice = Buffer.concat([
      encodeObject(FULL_POD),
      encodeObject({ ...FULL_POD, spec: { containers: [{ name: 'c', image: 'i' }] } } as Pod),
    ]);
    assert.equal(
      storedStringField('Pod', twice, ['spec', 'nodeName']),
      (decodeObject('Pod', twice) as Pod).spec.nodeName,
    );
  });

  test('a path that is not message fields down to a string, and bytes that are not a message, are internal errors', () => {
    assert.throws(() => storedStringField('Pod', new Uint8Array(0), ['spec', 'containers']), InternalError);
    assert.throws(() => storedStringField('Pod', new Uint8Array(0), ['spec', 'noSuchField']), InternalError);
    assert.throws(
      () => storedStringField('Pod', Uint8Array.from([0x12, 0xff, 0xff]), ['spec', 'nodeName']),
      InternalError,
    );
  });
});
