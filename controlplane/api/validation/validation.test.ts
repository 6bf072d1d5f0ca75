import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { InvalidArgumentError } from '../../../proto/errors.js';
import type {
  ConfigMap,
  CronJob,
  DaemonSet,
  Deployment,
  EndpointSlice,
  Endpoints,
  Event,
  Job,
  KubeObject,
  Lease,
  Namespace,
  Node,
  Pod,
  PriorityClass,
  ReplicaSet,
  Secret,
  Service,
  ServiceAccount,
} from '../../../proto/gen/types.js';
import { decodeObject, encodeObject, parseObject } from '../../../proto/objects.js';
import { parseAllDocuments } from 'yaml';
import { defaultObject, validateObject } from '../kinds/index.js';

const podSpec = (): Pod['spec'] => ({
  containers: [
    {
      name: 'app',
      image: 'registry.local/web:1.2',
      ports: [{ name: 'http', containerPort: 8080 }],
      resources: { requests: { cpu: '250m', memory: '64Mi' }, limits: { cpu: '1', memory: '128Mi' } },
      volumeMounts: [{ name: 'scratch', mountPath: '/tmp' }],
      env: [
        { name: 'A', value: 'b' },
        { name: 'POD', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } },
        { name: 'TEAM', valueFrom: { fieldRef: { fieldPath: "metadata.labels['team']" } } },
      ],
      livenessProbe: { httpGet: { path: '/healthz', port: 'http' } },
      readinessProbe: { tcpSocket: { port: 8080 }, successThreshold: 2 },
    },
  ],
  volumes: [{ name: 'scratch', emptyDir: {} }],
  tolerations: [{ key: 'dedicated', operator: 'Equal', value: 'web', effect: 'NoSchedule' }],
  affinity: {
    nodeAffinity: {
      requiredDuringSchedulingIgnoredDuringExecution: {
        nodeSelectorTerms: [{ matchExpressions: [{ key: 'zone', operator: 'In', values: ['a'] }] }],
      },
    },
    podAntiAffinity: {
      preferredDuringSchedulingIgnoredDuringExecution: [
        {
          weight: 50,
          podAffinityTerm: {
            labelSelector: { matchLabels: { app: 'web' } },
            topologyKey: 'kubernetes.io/hostname',
          },
        },
      ],
    },
  },
});

const template = (labels: Record<string, string> = { app: 'web' }) => ({
  metadata: { labels },
  spec: podSpec(),
});

const VALID: Record<KubeObject['kind'], () => KubeObject> = {
  Pod: (): Pod => ({
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: 'web-0', namespace: 'shop', labels: { app: 'web' } },
    spec: podSpec(),
  }),
  Deployment: (): Deployment => ({
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name: 'web', namespace: 'shop' },
    spec: { replicas: 3, selector: { matchLabels: { app: 'web' } }, template: template() },
  }),
  ReplicaSet: (): ReplicaSet => ({
    apiVersion: 'apps/v1',
    kind: 'ReplicaSet',
    metadata: { name: 'web-abc', namespace: 'shop' },
    spec: {
      selector: { matchExpressions: [{ key: 'app', operator: 'In', values: ['web'] }] },
      template: template(),
    },
  }),
  DaemonSet: (): DaemonSet => ({
    apiVersion: 'apps/v1',
    kind: 'DaemonSet',
    metadata: { name: 'agent', namespace: 'shop' },
    spec: { selector: { matchLabels: { app: 'web' } }, template: template() },
  }),
  Job: (): Job => ({
    apiVersion: 'batch/v1',
    kind: 'Job',
    metadata: { name: 'migrate', namespace: 'shop' },
    spec: { template: { spec: { ...podSpec(), restartPolicy: 'Never' } } },
  }),
  Service: (): Service => ({
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name: 'web', namespace: 'shop' },
    spec: {
      selector: { app: 'web' },
      ports: [
        { name: 'http', port: 80, targetPort: 'http' },
        { name: 'metrics', port: 9090, targetPort: 9090, protocol: 'TCP' },
      ],
    },
  }),
  Endpoints: (): Endpoints => ({
    apiVersion: 'v1',
    kind: 'Endpoints',
    metadata: { name: 'web', namespace: 'shop' },
    subsets: [
      { addresses: [{ ip: '10.244.0.5', nodeName: 'node-1' }], ports: [{ port: 8080, protocol: 'TCP' }] },
    ],
  }),
  ConfigMap: (): ConfigMap => ({
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: { name: 'web-conf', namespace: 'shop' },
    data: { 'app.conf': 'x=1' },
    binaryData: { 'logo.png': 'iVBORw==' },
  }),
  Secret: (): Secret => ({
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: { name: 'web-creds', namespace: 'shop' },
    data: { token: 'aHVudGVyMg==' },
  }),
  Namespace: (): Namespace => ({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'shop' }, spec: {} }),
  Node: (): Node => ({
    apiVersion: 'v1',
    kind: 'Node',
    metadata: { name: 'node-1.example.com', labels: { 'kubernetes.io/hostname': 'node-1' } },
    spec: { podCIDR: '10.244.1.0/24', taints: [{ key: 'dedicated', value: 'web', effect: 'NoSchedule' }] },
    status: {
      capacity: { cpu: '2', memory: '4Gi', pods: '110' },
      allocatable: { cpu: '1900m', memory: '3.5Gi' },
      addresses: [{ type: 'InternalIP', address: '10.0.0.1' }],
    },
  }),
  Event: (): Event => ({
    apiVersion: 'v1',
    kind: 'Event',
    metadata: { name: 'web-0.1', namespace: 'shop' },
    involvedObject: { kind: 'Pod', name: 'web-0', namespace: 'shop' },
    reason: 'Scheduled',
    type: 'Normal',
    count: 1,
  }),
  CronJob: (): CronJob => ({
    apiVersion: 'batch/v1',
    kind: 'CronJob',
    metadata: { name: 'nightly', namespace: 'shop' },
    spec: {
      schedule: '30 2 * * MON-FRI',
      timeZone: 'Europe/Berlin',
      jobTemplate: { spec: { template: { spec: { ...podSpec(), restartPolicy: 'OnFailure' } } } },
    },
  }),
  Lease: (): Lease => ({
    apiVersion: 'coordination.k8s.io/v1',
    kind: 'Lease',
    metadata: { name: 'skiff-scheduler', namespace: 'kube-system' },
    spec: {
      holderIdentity: 'cp-1_4f2a',
      leaseDurationSeconds: 15,
      acquireTime: '2026-12-06T20:00:00.000000Z',
      renewTime: '2026-12-06T20:00:10.123456Z',
      leaseTransitions: 2,
    },
  }),
  PriorityClass: (): PriorityClass => ({
    apiVersion: 'scheduling.k8s.io/v1',
    kind: 'PriorityClass',
    metadata: { name: 'high-priority' },
    value: 1000000,
    globalDefault: false,
    description: 'For the shop front end.',
  }),
  EndpointSlice: (): EndpointSlice => ({
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: { name: 'web-abc12', namespace: 'shop', labels: { 'kubernetes.io/service-name': 'web' } },
    addressType: 'IPv4',
    endpoints: [
      {
        addresses: ['10.244.1.5'],
        conditions: { ready: true },
        nodeName: 'node-1',
        targetRef: { kind: 'Pod', name: 'web-0', namespace: 'shop' },
      },
    ],
    ports: [{ name: 'http', port: 8080 }],
  }),
  ServiceAccount: (): ServiceAccount => ({
    apiVersion: 'v1',
    kind: 'ServiceAccount',
    metadata: { name: 'builder', namespace: 'shop' },
    secrets: [{ name: 'builder-token' }],
    imagePullSecrets: [{ name: 'registry' }],
    automountServiceAccountToken: false,
  }),
};

/** Valid object of `kind`, changed by `mutate`, then defaulted as the API server does. */
function variant<T extends KubeObject>(kind: T['kind'], mutate: (obj: T) => void): T {
  const obj = VALID[kind]() as T;
  mutate(obj);
  return defaultObject(obj);
}

function expectInvalid(obj: KubeObject, field: string, message: RegExp, old?: KubeObject): void {
  assert.throws(
    () => validateObject(obj, old),
    (err: unknown) => {
      assert.ok(err instanceof InvalidArgumentError, `expected InvalidArgumentError, got ${String(err)}`);
      assert.equal(err.field, field, err.message);
      assert.match(err.message, message);
      assert.match(err.message, new RegExp(`^validate ${obj.kind} "`));
      return true;
    },
  );
}

interface Case<T extends KubeObject> {
  name: string;
  mutate: (obj: T) => void;
  field: string;
  message: RegExp;
}

function table<T extends KubeObject>(kind: T['kind'], cases: Case<T>[]): void {
  describe(`${kind} validation`, () => {
    test('the valid example passes, defaulted and after a round trip through the codec', () => {
      const obj = defaultObject(VALID[kind]());
      validateObject(obj);
      validateObject(parseObject(obj));
      validateObject(obj, obj);
      assert.deepEqual(decodeObject(obj.kind, encodeObject(obj)), parseObject(obj));
    });
    for (const c of cases) {
      test(`${c.name} → ${c.field}`, () => expectInvalid(variant<T>(kind, c.mutate), c.field, c.message));
    }
  });
}

table<Pod>('Pod', [
  {
    name: 'missing name',
    mutate: (p) => delete p.metadata.name,
    field: 'metadata.name',
    message: /required/,
  },
  {
    name: 'uppercase name',
    mutate: (p) => (p.metadata.name = 'Web'),
    field: 'metadata.name',
    message: /DNS-1123 subdomain/,
  },
  {
    name: 'name too long',
    mutate: (p) => (p.metadata.name = 'a'.repeat(254)),
    field: 'metadata.name',
    message: /no more than 253/,
  },
  {
    name: 'bad generateName',
    mutate: (p) => (p.metadata.generateName = 'Web-'),
    field: 'metadata.generateName',
    message: /DNS-1123/,
  },
  {
    name: 'bad namespace',
    mutate: (p) => (p.metadata.namespace = 'a.b'),
    field: 'metadata.namespace',
    message: /DNS-1123 label/,
  },
  {
    name: 'bad label key',
    mutate: (p) => (p.metadata.labels = { 'a/b/c': 'x' }),
    field: 'metadata.labels[a/b/c]',
    message: /qualified name/,
  },
  {
    name: 'bad label value',
    mutate: (p) => (p.metadata.labels = { app: 'web app' }),
    field: 'metadata.labels[app]',
    message: /value "web app"/,
  },
  {
    name: 'label value too long',
    mutate: (p) => (p.metadata.labels = { app: 'a'.repeat(64) }),
    field: 'metadata.labels[app]',
    message: /no more than 63/,
  },
  {
    name: 'bad annotation key',
    mutate: (p) => (p.metadata.annotations = { '-x': 'y' }),
    field: 'metadata.annotations[-x]',
    message: /not a valid key/,
  },
  {
    name: 'annotations too large',
    mutate: (p) => (p.metadata.annotations = { big: 'x'.repeat(256 * 1024) }),
    field: 'metadata.annotations',
    message: /more than the limit of 262144/,
  },
  {
    name: 'two controllers',
    mutate: (p) =>
      (p.metadata.ownerReferences = [1, 2].map((i) => ({
        apiVersion: 'apps/v1',
        kind: 'ReplicaSet',
        name: `r${i}`,
        uid: `u${i}`,
        controller: true,
      }))),
    field: 'metadata.ownerReferences[1].controller',
    message: /only one/,
  },
  {
    name: 'no containers',
    mutate: (p) => (p.spec.containers = []),
    field: 'spec.containers',
    message: /at least one container/,
  },
  {
    name: 'missing image',
    mutate: (p) => delete p.spec.containers![0]!.image,
    field: 'spec.containers[0].image',
    message: /needs an image/,
  },
  {
    name: 'image with whitespace',
    mutate: (p) => (p.spec.containers![0]!.image = 'web 1'),
    field: 'spec.containers[0].image',
    message: /whitespace/,
  },
  {
    name: 'container name not a label',
    mutate: (p) => (p.spec.containers![0]!.name = 'my.app'),
    field: 'spec.containers[0].name',
    message: /DNS-1123 label/,
  },
  {
    name: 'duplicate container names',
    mutate: (p) => (p.spec.initContainers = [{ name: 'app', image: 'busybox' }]),
    field: 'spec.containers[0].name',
    message: /duplicate container name "app"/,
  },
  {
    name: 'bad restartPolicy',
    mutate: (p) => (p.spec.restartPolicy = 'Sometimes'),
    field: 'spec.restartPolicy',
    message: /Always or OnFailure or Never/,
  },
  {
    name: 'bad imagePullPolicy',
    mutate: (p) => (p.spec.containers![0]!.imagePullPolicy = 'Maybe'),
    field: 'spec.containers[0].imagePullPolicy',
    message: /Always, IfNotPresent, Never/,
  },
  {
    name: 'port 0',
    mutate: (p) => (p.spec.containers![0]!.ports = [{ containerPort: 0 }]),
    field: 'spec.containers[0].ports[0].containerPort',
    message: /between 1 and 65535/,
  },
  {
    name: 'port 65536',
    mutate: (p) => (p.spec.containers![0]!.ports = [{ containerPort: 65536 }]),
    field: 'spec.containers[0].ports[0].containerPort',
    message: /between 1 and 65535/,
  },
  {
    name: 'bad protocol',
    mutate: (p) => (p.spec.containers![0]!.ports = [{ containerPort: 80, protocol: 'HTTP' }]),
    field: 'spec.containers[0].ports[0].protocol',
    message: /TCP, UDP, SCTP/,
  },
  {
    name: 'bad port name',
    mutate: (p) => (p.spec.containers![0]!.ports = [{ containerPort: 80, name: 'this-name-is-too-long' }]),
    field: 'spec.containers[0].ports[0].name',
    message: /15 characters/,
  },
  {
    name: 'bad cpu quantity',
    mutate: (p) => (p.spec.containers![0]!.resources = { limits: { cpu: 'lots' } }),
    field: 'spec.containers[0].resources.limits[cpu]',
    message: /quantity "lots"/,
  },
  {
    name: 'negative memory',
    mutate: (p) => (p.spec.containers![0]!.resources = { requests: { memory: '-1Mi' } }),
    field: 'spec.containers[0].resources.requests[memory]',
    message: /negative/,
  },
  {
    name: 'request above limit',
    mutate: (p) => (p.spec.containers![0]!.resources = { requests: { cpu: '2' }, limits: { cpu: '1500m' } }),
    field: 'spec.containers[0].resources.requests[cpu]',
    message: /more than the limit "1500m"/,
  },
  {
    name: 'unknown resource',
    mutate: (p) => (p.spec.containers![0]!.resources = { limits: { gpu: '1' } }),
    field: 'spec.containers[0].resources.limits[gpu]',
    message: /domain-qualified/,
  },
  {
    name: 'mount of an unknown volume',
    mutate: (p) => (p.spec.containers![0]!.volumeMounts = [{ name: 'nope', mountPath: '/x' }]),
    field: 'spec.containers[0].volumeMounts[0].name',
    message: /not one of the pod's spec.volumes/,
  },
  {
    name: 'relative mountPath',
    mutate: (p) => (p.spec.containers![0]!.volumeMounts = [{ name: 'scratch', mountPath: 'tmp' }]),
    field: 'spec.containers[0].volumeMounts[0].mountPath',
    message: /absolute/,
  },
  {
    name: 'subPath escaping',
    mutate: (p) =>
      (p.spec.containers![0]!.volumeMounts = [{ name: 'scratch', mountPath: '/x', subPath: '../etc' }]),
    field: 'spec.containers[0].volumeMounts[0].subPath',
    message: /'\.\.'/,
  },
  {
    name: 'volume with two sources',
    mutate: (p) => (p.spec.volumes = [{ name: 'scratch', emptyDir: {}, hostPath: { path: '/x' } }]),
    field: 'spec.volumes[0]',
    message: /only one volume source, found emptyDir and hostPath/,
  },
  {
    name: 'volume without a source',
    mutate: (p) => (p.spec.volumes = [{ name: 'scratch' }]),
    field: 'spec.volumes[0]',
    message: /must specify a volume source/,
  },
  {
    name: 'duplicate volume',
    mutate: (p) =>
      (p.spec.volumes = [
        { name: 'scratch', emptyDir: {} },
        { name: 'scratch', emptyDir: {} },
      ]),
    field: 'spec.volumes[1].name',
    message: /duplicate volume/,
  },
  {
    name: 'relative hostPath',
    mutate: (p) => p.spec.volumes!.push({ name: 'h', hostPath: { path: 'var' } }),
    field: 'spec.volumes[1].hostPath.path',
    message: /absolute/,
  },
  {
    name: 'configMap volume without name',
    mutate: (p) => p.spec.volumes!.push({ name: 'c', configMap: {} }),
    field: 'spec.volumes[1].configMap.name',
    message: /required/,
  },
  {
    name: 'env var with = in its name',
    mutate: (p) => (p.spec.containers![0]!.env = [{ name: 'A=B' }]),
    field: 'spec.containers[0].env[0].name',
    message: /letters, digits/,
  },
  {
    name: 'env value and valueFrom',
    mutate: (p) =>
      (p.spec.containers![0]!.env = [
        { name: 'A', value: 'x', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } },
      ]),
    field: 'spec.containers[0].env[0].valueFrom',
    message: /together with value/,
  },
  {
    name: 'env from two sources',
    mutate: (p) =>
      (p.spec.containers![0]!.env = [
        {
          name: 'A',
          valueFrom: { fieldRef: { fieldPath: 'metadata.name' }, secretKeyRef: { name: 's', key: 'k' } },
        },
      ]),
    field: 'spec.containers[0].env[0].valueFrom',
    message: /only one value source/,
  },
  {
    name: 'unsupported fieldRef',
    mutate: (p) =>
      (p.spec.containers![0]!.env = [
        { name: 'A', valueFrom: { fieldRef: { fieldPath: 'spec.containers' } } },
      ]),
    field: 'spec.containers[0].env[0].valueFrom.fieldRef.fieldPath',
    message: /unsupported value/,
  },
  {
    name: 'configMapKeyRef without name',
    mutate: (p) =>
      (p.spec.containers![0]!.env = [{ name: 'A', valueFrom: { configMapKeyRef: { key: 'k' } } }]),
    field: 'spec.containers[0].env[0].valueFrom.configMapKeyRef.name',
    message: /required/,
  },
  {
    name: 'envFrom without source',
    mutate: (p) => (p.spec.containers![0]!.envFrom = [{ prefix: 'X_' }]),
    field: 'spec.containers[0].envFrom[0]',
    message: /must specify a source/,
  },
  {
    name: 'probe without handler',
    mutate: (p) => (p.spec.containers![0]!.livenessProbe = { periodSeconds: 5 }),
    field: 'spec.containers[0].livenessProbe',
    message: /must specify a handler/,
  },
  {
    name: 'probe with two handlers',
    mutate: (p) =>
      (p.spec.containers![0]!.startupProbe = { exec: { command: ['true'] }, tcpSocket: { port: 80 } }),
    field: 'spec.containers[0].startupProbe',
    message: /only one handler/,
  },
  {
    name: 'liveness successThreshold',
    mutate: (p) =>
      (p.spec.containers![0]!.livenessProbe = { exec: { command: ['true'] }, successThreshold: 2 }),
    field: 'spec.containers[0].livenessProbe.successThreshold',
    message: /must be 1/,
  },
  {
    name: 'probe port out of range',
    mutate: (p) => (p.spec.containers![0]!.readinessProbe = { tcpSocket: { port: 70000 } }),
    field: 'spec.containers[0].readinessProbe.tcpSocket.port',
    message: /between 1 and 65535/,
  },
  {
    name: 'negative probe timing',
    mutate: (p) =>
      (p.spec.containers![0]!.readinessProbe = { tcpSocket: { port: 80 }, initialDelaySeconds: -1 }),
    field: 'spec.containers[0].readinessProbe.initialDelaySeconds',
    message: /at least 0/,
  },
  {
    name: 'exec probe without command',
    mutate: (p) => (p.spec.containers![0]!.readinessProbe = { exec: {} }),
    field: 'spec.containers[0].readinessProbe.exec.command',
    message: /required/,
  },
  {
    name: 'probe on an init container',
    mutate: (p) =>
      (p.spec.initContainers = [{ name: 'init', image: 'b', readinessProbe: { exec: { command: ['x'] } } }]),
    field: 'spec.initContainers[0].readinessProbe',
    message: /may not have probes/,
  },
  {
    name: 'privileged without escalation',
    mutate: (p) =>
      (p.spec.containers![0]!.securityContext = { privileged: true, allowPrivilegeEscalation: false }),
    field: 'spec.containers[0].securityContext.allowPrivilegeEscalation',
    message: /privileged/,
  },
  {
    name: 'negative grace period',
    mutate: (p) => (p.spec.terminationGracePeriodSeconds = -1),
    field: 'spec.terminationGracePeriodSeconds',
    message: /at least 0/,
  },
  {
    name: 'bad nodeSelector',
    mutate: (p) => (p.spec.nodeSelector = { zone: 'a b' }),
    field: 'spec.nodeSelector[zone]',
    message: /value "a b"/,
  },
  {
    name: 'bad nodeName',
    mutate: (p) => (p.spec.nodeName = 'Node_1'),
    field: 'spec.nodeName',
    message: /DNS-1123 subdomain/,
  },
  {
    name: 'toleration Exists with value',
    mutate: (p) => (p.spec.tolerations = [{ key: 'k', operator: 'Exists', value: 'v' }]),
    field: 'spec.tolerations[0].value',
    message: /empty when operator is Exists/,
  },
  {
    name: 'toleration without key must be Exists',
    mutate: (p) => (p.spec.tolerations = [{ operator: 'Equal', value: 'v' }]),
    field: 'spec.tolerations[0].operator',
    message: /must be Exists/,
  },
  {
    name: 'toleration bad effect',
    mutate: (p) => (p.spec.tolerations = [{ key: 'k', operator: 'Exists', effect: 'NoRun' }]),
    field: 'spec.tolerations[0].effect',
    message: /NoSchedule, PreferNoSchedule, NoExecute/,
  },
  {
    name: 'tolerationSeconds without NoExecute',
    mutate: (p) =>
      (p.spec.tolerations = [{ key: 'k', operator: 'Exists', effect: 'NoSchedule', tolerationSeconds: 5 }]),
    field: 'spec.tolerations[0].tolerationSeconds',
    message: /NoExecute/,
  },
  {
    name: 'node affinity without terms',
    mutate: (p) =>
      (p.spec.affinity = { nodeAffinity: { requiredDuringSchedulingIgnoredDuringExecution: {} } }),
    field: 'spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms',
    message: /at least one/,
  },
  {
    name: 'node affinity In without values',
    mutate: (p) =>
      (p.spec.affinity = {
        nodeAffinity: {
          requiredDuringSchedulingIgnoredDuringExecution: {
            nodeSelectorTerms: [{ matchExpressions: [{ key: 'zone', operator: 'In' }] }],
          },
        },
      }),
    field:
      'spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0].matchExpressions[0].values',
    message: /non-empty/,
  },
  {
    name: 'node affinity Gt non-integer',
    mutate: (p) =>
      (p.spec.affinity = {
        nodeAffinity: {
          requiredDuringSchedulingIgnoredDuringExecution: {
            nodeSelectorTerms: [{ matchExpressions: [{ key: 'cores', operator: 'Gt', values: ['x'] }] }],
          },
        },
      }),
    field:
      'spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0].matchExpressions[0].values',
    message: /single integer/,
  },
  {
    name: 'preferred weight 0',
    mutate: (p) =>
      (p.spec.affinity!.podAntiAffinity!.preferredDuringSchedulingIgnoredDuringExecution![0]!.weight = 0),
    field: 'spec.affinity.podAntiAffinity.preferredDuringSchedulingIgnoredDuringExecution[0].weight',
    message: /between 1 and 100/,
  },
  {
    name: 'pod affinity bad selector',
    mutate: (p) =>
      (p.spec.affinity = {
        podAffinity: {
          requiredDuringSchedulingIgnoredDuringExecution: [
            { topologyKey: 'zone', labelSelector: { matchExpressions: [{ key: 'a', operator: 'Is' }] } },
          ],
        },
      }),
    field:
      'spec.affinity.podAffinity.requiredDuringSchedulingIgnoredDuringExecution[0].labelSelector.matchExpressions[0].operator',
    message: /not one of In, NotIn/,
  },
  {
    name: 'hostNetwork with a different host port',
    mutate: (p) => {
      p.spec.hostNetwork = true;
      p.spec.containers![0]!.ports = [{ containerPort: 80, hostPort: 8080 }];
    },
    field: 'spec.containers[0].ports[0].hostPort',
    message: /must equal containerPort/,
  },
  {
    name: 'bad status phase',
    mutate: (p) => (p.status = { phase: 'Sleeping' }),
    field: 'status.phase',
    message: /Pending, Running/,
  },
]);

describe('Pod updates', () => {
  const stored = () => defaultObject(VALID.Pod() as Pod);
  test('images, a lower activeDeadlineSeconds, added tolerations and a first nodeName may change', () => {
    const old = stored();
    old.spec.activeDeadlineSeconds = 100;
    const next = structuredClone(old);
    next.spec.containers![0]!.image = 'registry.local/web:1.3';
    next.spec.activeDeadlineSeconds = 50;
    next.spec.tolerations!.push({ key: 'extra', operator: 'Exists' });
    next.spec.nodeName = 'node-1';
    next.metadata.labels = { app: 'web', extra: 'yes' };
    validateObject(next, old);
  });
  const updates: [string, (p: Pod) => void, string, RegExp][] = [
    [
      'a container command',
      (p) => (p.spec.containers![0]!.command = ['sh']),
      'spec.containers[0].command',
      /field is immutable: a pod spec may change only in/,
    ],
    ['restartPolicy', (p) => (p.spec.restartPolicy = 'Never'), 'spec.restartPolicy', /immutable/],
    ['a second nodeName', (p) => (p.spec.nodeName = 'node-2'), 'spec.nodeName', /immutable/],
    [
      'a removed toleration',
      (p) => (p.spec.tolerations = []),
      'spec.tolerations[0]',
      /may not be changed or removed/,
    ],
    [
      'a raised activeDeadlineSeconds',
      (p) => (p.spec.activeDeadlineSeconds = 500),
      'spec.activeDeadlineSeconds',
      /may only be lowered/,
    ],
    ['metadata.name', (p) => (p.metadata.name = 'other'), 'metadata.name', /immutable/],
    [
      'a nodeSelector',
      (p) => (p.spec.nodeSelector = { zone: 'b' }),
      'spec.nodeSelector',
      /field is immutable/,
    ],
    [
      'a resource limit',
      (p) => (p.spec.containers![0]!.resources!.limits!['cpu'] = '2'),
      'spec.containers[0].resources.limits[cpu]',
      /field is immutable/,
    ],
  ];
  for (const [what, mutate, field, message] of updates) {
    test(`changing ${what} is refused at ${field}`, () => {
      const old = stored();
      old.spec.nodeName = 'node-1';
      old.spec.activeDeadlineSeconds = 100;
      const next = structuredClone(old);
      mutate(next);
      expectInvalid(next, field, message, old);
    });
  }
});

table<Deployment>('Deployment', [
  {
    name: 'missing selector',
    mutate: (d) => delete d.spec.selector,
    field: 'spec.selector',
    message: /required/,
  },
  {
    name: 'empty selector',
    mutate: (d) => (d.spec.selector = {}),
    field: 'spec.selector',
    message: /must not be empty/,
  },
  {
    name: 'selector not matching template',
    mutate: (d) => (d.spec.selector = { matchLabels: { app: 'db' } }),
    field: 'spec.template.metadata.labels',
    message: /do not match spec.selector "app=db"/,
  },
  {
    name: 'negative replicas',
    mutate: (d) => (d.spec.replicas = -1),
    field: 'spec.replicas',
    message: /at least 0/,
  },
  {
    name: 'template restartPolicy Never',
    mutate: (d) => (d.spec.template!.spec!.restartPolicy = 'Never'),
    field: 'spec.template.spec.restartPolicy',
    message: /must be Always here/,
  },
  {
    name: 'bad container in template',
    mutate: (d) => (d.spec.template!.spec!.containers![0]!.image = ''),
    field: 'spec.template.spec.containers[0].image',
    message: /needs an image/,
  },
  {
    name: 'bad strategy type',
    mutate: (d) => (d.spec.strategy = { type: 'BlueGreen' }),
    field: 'spec.strategy.type',
    message: /RollingUpdate, Recreate/,
  },
  {
    name: 'Recreate with rollingUpdate',
    mutate: (d) => (d.spec.strategy = { type: 'Recreate', rollingUpdate: { maxSurge: 1 } }),
    field: 'spec.strategy.rollingUpdate',
    message: /Recreate/,
  },
  {
    name: 'bad maxSurge',
    mutate: (d) => (d.spec.strategy = { rollingUpdate: { maxSurge: 'lots' } }),
    field: 'spec.strategy.rollingUpdate.maxSurge',
    message: /percentage/,
  },
  {
    name: 'maxUnavailable over 100%',
    mutate: (d) => (d.spec.strategy = { rollingUpdate: { maxUnavailable: '150%' } }),
    field: 'spec.strategy.rollingUpdate.maxUnavailable',
    message: /100%/,
  },
  {
    name: 'both zero',
    mutate: (d) => (d.spec.strategy = { rollingUpdate: { maxUnavailable: 0, maxSurge: '0%' } }),
    field: 'spec.strategy.rollingUpdate.maxUnavailable',
    message: /may not be 0 when maxSurge is 0/,
  },
  {
    name: 'progress deadline below minReady',
    mutate: (d) => {
      d.spec.minReadySeconds = 60;
      d.spec.progressDeadlineSeconds = 30;
    },
    field: 'spec.progressDeadlineSeconds',
    message: /more than minReadySeconds/,
  },
  {
    name: 'negative revisionHistoryLimit',
    mutate: (d) => (d.spec.revisionHistoryLimit = -1),
    field: 'spec.revisionHistoryLimit',
    message: /at least 0/,
  },
  {
    name: 'bad template label',
    mutate: (d) => (d.spec.template!.metadata!.labels = { app: 'web', 'x/y/z': '1' }),
    field: 'spec.template.metadata.labels[x/y/z]',
    message: /qualified name/,
  },
]);

test('a Deployment selector cannot change on update; replicas and template can', () => {
  const old = defaultObject(VALID.Deployment()) as Deployment;
  const scaled = structuredClone(old);
  scaled.spec.replicas = 10;
  scaled.spec.template!.spec!.containers![0]!.image = 'web:2';
  validateObject(scaled, old);
  const moved = structuredClone(old);
  moved.spec.selector = { matchLabels: { app: 'web', tier: 'x' } };
  moved.spec.template!.metadata!.labels = { app: 'web', tier: 'x' };
  expectInvalid(
    moved,
    'spec.selector.matchLabels[tier]',
    /field is immutable: a Deployment selector cannot change/,
    old,
  );
});

table<ReplicaSet>('ReplicaSet', [
  {
    name: 'selector expression not matching',
    mutate: (r) =>
      (r.spec.selector = { matchExpressions: [{ key: 'app', operator: 'NotIn', values: ['web'] }] }),
    field: 'spec.template.metadata.labels',
    message: /do not match/,
  },
  {
    name: 'bad selector operator',
    mutate: (r) =>
      (r.spec.selector = { matchExpressions: [{ key: 'app', operator: 'in', values: ['web'] }] }),
    field: 'spec.selector.matchExpressions[0].operator',
    message: /not one of In/,
  },
  {
    name: 'missing template',
    mutate: (r) => delete r.spec.template,
    field: 'spec.template.metadata.labels',
    message: /do not match/,
  },
]);

table<DaemonSet>('DaemonSet', [
  {
    name: 'bad update strategy',
    mutate: (d) => (d.spec.updateStrategy = { type: 'Surge' }),
    field: 'spec.updateStrategy.type',
    message: /RollingUpdate, OnDelete/,
  },
  {
    name: 'OnDelete with rollingUpdate',
    mutate: (d) => (d.spec.updateStrategy = { type: 'OnDelete', rollingUpdate: { maxUnavailable: 1 } }),
    field: 'spec.updateStrategy.rollingUpdate',
    message: /OnDelete/,
  },
  {
    name: 'missing selector',
    mutate: (d) => delete d.spec.selector,
    field: 'spec.selector',
    message: /required/,
  },
]);

table<Job>('Job', [
  {
    name: 'restartPolicy Always',
    mutate: (j) => (j.spec.template!.spec!.restartPolicy = 'Always'),
    field: 'spec.template.spec.restartPolicy',
    message: /OnFailure or Never/,
  },
  {
    name: 'restartPolicy defaulted to Always',
    mutate: (j) => delete j.spec.template!.spec!.restartPolicy,
    field: 'spec.template.spec.restartPolicy',
    message: /unsupported value "Always"/,
  },
  {
    name: 'negative backoffLimit',
    mutate: (j) => (j.spec.backoffLimit = -1),
    field: 'spec.backoffLimit',
    message: /at least 0/,
  },
  {
    name: 'negative parallelism',
    mutate: (j) => (j.spec.parallelism = -2),
    field: 'spec.parallelism',
    message: /at least 0/,
  },
  {
    name: 'zero activeDeadlineSeconds',
    mutate: (j) => (j.spec.activeDeadlineSeconds = 0),
    field: 'spec.activeDeadlineSeconds',
    message: /at least 1/,
  },
  {
    name: 'bad completionMode',
    mutate: (j) => (j.spec.completionMode = 'Sometimes'),
    field: 'spec.completionMode',
    message: /NonIndexed, Indexed/,
  },
  {
    name: 'selector not matching',
    mutate: (j) => (j.spec.selector = { matchLabels: { job: 'x' } }),
    field: 'spec.template.metadata.labels',
    message: /do not match/,
  },
  {
    name: 'manualSelector without selector',
    mutate: (j) => (j.spec.manualSelector = true),
    field: 'spec.selector',
    message: /required when manualSelector/,
  },
  {
    name: 'bad container',
    mutate: (j) => (j.spec.template!.spec!.containers![0]!.name = 'A'),
    field: 'spec.template.spec.containers[0].name',
    message: /DNS-1123 label/,
  },
]);

test('a Job template and completions cannot change on update; parallelism can', () => {
  const old = defaultObject(VALID.Job()) as Job;
  const wider = structuredClone(old);
  wider.spec.parallelism = 4;
  validateObject(wider, old);
  const changed = structuredClone(old);
  changed.spec.template!.spec!.containers![0]!.image = 'other';
  expectInvalid(changed, 'spec.template.spec.containers[0].image', /field is immutable/, old);
  const more = structuredClone(old);
  more.spec.completions = 5;
  expectInvalid(more, 'spec.completions', /field is immutable/, old);
});

table<Service>('Service', [
  {
    name: 'name not a DNS-1035 label',
    mutate: (s) => (s.metadata.name = '1web'),
    field: 'metadata.name',
    message: /DNS-1035/,
  },
  {
    name: 'no ports',
    mutate: (s) => delete s.spec.ports,
    field: 'spec.ports',
    message: /unless it is headless/,
  },
  {
    name: 'port 0',
    mutate: (s) => (s.spec.ports = [{ port: 0 }]),
    field: 'spec.ports[0].port',
    message: /between 1 and 65535/,
  },
  {
    name: 'bad protocol',
    mutate: (s) => (s.spec.ports = [{ port: 80, protocol: 'tcp' }]),
    field: 'spec.ports[0].protocol',
    message: /TCP, UDP, SCTP/,
  },
  {
    name: 'unnamed port among several',
    mutate: (s) => (s.spec.ports = [{ name: 'a', port: 80 }, { port: 81 }]),
    field: 'spec.ports[1].name',
    message: /each needs a name/,
  },
  {
    name: 'duplicate port',
    mutate: (s) =>
      (s.spec.ports = [
        { name: 'a', port: 80 },
        { name: 'b', port: 80 },
      ]),
    field: 'spec.ports[1].port',
    message: /duplicate port 80\/TCP/,
  },
  {
    name: 'bad targetPort',
    mutate: (s) => (s.spec.ports = [{ port: 80, targetPort: 70000 }]),
    field: 'spec.ports[0].targetPort',
    message: /between 1 and 65535/,
  },
  {
    name: 'targetPort name invalid',
    mutate: (s) => (s.spec.ports = [{ port: 80, targetPort: 'HTTP' }]),
    field: 'spec.ports[0].targetPort',
    message: /IANA service name/,
  },
  {
    name: 'nodePort on ClusterIP',
    mutate: (s) => (s.spec.ports = [{ port: 80, nodePort: 30080 }]),
    field: 'spec.ports[0].nodePort',
    message: /NodePort or LoadBalancer/,
  },
  {
    name: 'nodePort out of range',
    mutate: (s) => {
      s.spec.type = 'NodePort';
      s.spec.ports = [{ port: 80, nodePort: 70000 }];
    },
    field: 'spec.ports[0].nodePort',
    message: /between 1 and 65535/,
  },
  {
    name: 'bad type',
    mutate: (s) => (s.spec.type = 'Internal'),
    field: 'spec.type',
    message: /ClusterIP, NodePort/,
  },
  {
    name: 'bad sessionAffinity',
    mutate: (s) => (s.spec.sessionAffinity = 'Sticky'),
    field: 'spec.sessionAffinity',
    message: /None, ClientIP/,
  },
  {
    name: 'bad clusterIP',
    mutate: (s) => (s.spec.clusterIP = '10.0.0.300'),
    field: 'spec.clusterIP',
    message: /IPv4 or IPv6/,
  },
  {
    name: 'headless NodePort',
    mutate: (s) => {
      s.spec.clusterIP = 'None';
      s.spec.type = 'NodePort';
    },
    field: 'spec.clusterIP',
    message: /headless/,
  },
  {
    name: 'ExternalName without name',
    mutate: (s) => (s.spec.type = 'ExternalName'),
    field: 'spec.externalName',
    message: /required/,
  },
  {
    name: 'bad selector label',
    mutate: (s) => (s.spec.selector = { app: '?' }),
    field: 'spec.selector[app]',
    message: /value "\?"/,
  },
]);

test('a headless Service needs no ports, and clusterIP is immutable', () => {
  const headless = defaultObject(VALID.Service()) as Service;
  headless.spec.clusterIP = 'None';
  delete headless.spec.ports;
  validateObject(headless);
  const old = defaultObject(VALID.Service()) as Service;
  old.spec.clusterIP = '10.96.0.10';
  const next = structuredClone(old);
  next.spec.clusterIP = '10.96.0.11';
  expectInvalid(next, 'spec.clusterIP', /field is immutable/, old);
});

test('fields from kubectl-exported Services and Pods are accepted and checked', () => {
  const service = defaultObject(VALID.Service()) as Service;
  Object.assign(service.spec, {
    ipFamilies: ['IPv4'],
    ipFamilyPolicy: 'SingleStack',
    internalTrafficPolicy: 'Cluster',
  });
  validateObject(parseObject(service));
  expectInvalid(
    { ...service, spec: { ...service.spec, ipFamilies: ['IPv5'] } },
    'spec.ipFamilies[0]',
    /IPv4, IPv6/,
  );
  const pod = defaultObject(VALID.Pod()) as Pod;
  pod.spec.imagePullSecrets = [{ name: 'regcred' }];
  pod.spec.containers![0]!.terminationMessagePolicy = 'File';
  validateObject(parseObject(pod));
  pod.spec.containers![0]!.terminationMessagePolicy = 'Always';
  expectInvalid(pod, 'spec.containers[0].terminationMessagePolicy', /File, FallbackToLogsOnError/);
});

table<Endpoints>('Endpoints', [
  {
    name: 'bad address',
    mutate: (e) => (e.subsets![0]!.addresses![0]!.ip = 'pod-1'),
    field: 'subsets[0].addresses[0].ip',
    message: /IPv4 or IPv6/,
  },
  {
    name: 'bad port',
    mutate: (e) => (e.subsets![0]!.ports = [{ port: 70000 }]),
    field: 'subsets[0].ports[0].port',
    message: /between 1 and 65535/,
  },
]);

table<ConfigMap>('ConfigMap', [
  {
    name: 'bad key',
    mutate: (c) => (c.data = { 'a/b': 'x' }),
    field: 'data[a/b]',
    message: /letters, digits/,
  },
  {
    name: 'key ..',
    mutate: (c) => (c.data = { '..': 'x' }),
    field: 'data[..]',
    message: /must not be '\.\.'/,
  },
  {
    name: 'key in data and binaryData',
    mutate: (c) => (c.binaryData = { 'app.conf': 'AA==' }),
    field: 'binaryData[app.conf]',
    message: /duplicate key "app.conf": also in data/,
  },
  {
    name: 'too large',
    mutate: (c) => (c.data = { big: 'x'.repeat(1024 * 1024 + 1) }),
    field: 'data',
    message: /more than the limit of 1048576/,
  },
  {
    name: 'bad name',
    mutate: (c) => (c.metadata.name = 'Conf'),
    field: 'metadata.name',
    message: /DNS-1123 subdomain/,
  },
]);

test('an immutable ConfigMap keeps its data and stays immutable', () => {
  const old = defaultObject(VALID.ConfigMap()) as ConfigMap;
  old.immutable = true;
  const relabelled = structuredClone(old);
  relabelled.metadata.labels = { a: 'b' };
  validateObject(relabelled, old);
  const changed = structuredClone(old);
  changed.data = { 'app.conf': 'x=2' };
  expectInvalid(changed, 'data[app.conf]', /the ConfigMap is immutable/, old);
  const unfrozen = structuredClone(old);
  unfrozen.immutable = false;
  expectInvalid(unfrozen, 'immutable', /created immutable/, old);
  const mutable = defaultObject(VALID.ConfigMap()) as ConfigMap;
  const edited = structuredClone(mutable);
  edited.data = { other: 'y' };
  validateObject(edited, mutable);
});

table<Secret>('Secret', [
  {
    name: 'bad key',
    mutate: (s) => (s.data = { 'a b': 'AA==' }),
    field: 'data[a b]',
    message: /letters, digits/,
  },
]);

test('a Secret type cannot change', () => {
  const old = defaultObject(VALID.Secret()) as Secret;
  const next = structuredClone(old);
  next.type = 'kubernetes.io/tls';
  expectInvalid(next, 'type', /field is immutable: was "Opaque"/, old);
});

table<Namespace>('Namespace', [
  {
    name: 'name not a label',
    mutate: (n) => (n.metadata.name = 'a.b'),
    field: 'metadata.name',
    message: /DNS-1123 label/,
  },
  {
    name: 'namespace set on a cluster-scoped kind',
    mutate: (n) => (n.metadata.namespace = 'default'),
    field: 'metadata.namespace',
    message: /cluster-scoped/,
  },
  {
    name: 'bad phase',
    mutate: (n) => (n.status = { phase: 'Gone' }),
    field: 'status.phase',
    message: /Active, Terminating/,
  },
]);

table<Node>('Node', [
  {
    name: 'bad taint effect',
    mutate: (n) => (n.spec.taints = [{ key: 'k', effect: 'Never' }]),
    field: 'spec.taints[0].effect',
    message: /NoSchedule, PreferNoSchedule, NoExecute/,
  },
  {
    name: 'bad taint key',
    mutate: (n) => (n.spec.taints = [{ key: 'a b', effect: 'NoSchedule' }]),
    field: 'spec.taints[0].key',
    message: /name part must consist/,
  },
  {
    name: 'duplicate taint',
    mutate: (n) =>
      (n.spec.taints = [
        { key: 'k', effect: 'NoSchedule' },
        { key: 'k', value: 'x', effect: 'NoSchedule' },
      ]),
    field: 'spec.taints[1]',
    message: /duplicate taint k:NoSchedule/,
  },
  {
    name: 'bad podCIDR',
    mutate: (n) => (n.spec.podCIDR = '10.0.0.0/33'),
    field: 'spec.podCIDR',
    message: /CIDR/,
  },
  {
    name: 'bad capacity',
    mutate: (n) => (n.status!.capacity = { cpu: 'two' }),
    field: 'status.capacity[cpu]',
    message: /quantity "two"/,
  },
  {
    name: 'bad address',
    mutate: (n) => (n.status!.addresses = [{ type: 'InternalIP', address: 'node-1' }]),
    field: 'status.addresses[0].address',
    message: /IPv4/,
  },
  {
    name: 'namespace set on a cluster-scoped kind',
    mutate: (n) => (n.metadata.namespace = 'x'),
    field: 'metadata.namespace',
    message: /cluster-scoped/,
  },
]);

table<Event>('Event', [
  {
    name: 'no involved object',
    mutate: (e) => delete e.involvedObject,
    field: 'involvedObject',
    message: /required/,
  },
  {
    name: 'involved object without name',
    mutate: (e) => delete e.involvedObject!.name,
    field: 'involvedObject.name',
    message: /required/,
  },
  {
    name: 'namespace mismatch',
    mutate: (e) => (e.involvedObject!.namespace = 'other'),
    field: 'involvedObject.namespace',
    message: /must match/,
  },
  { name: 'bad type', mutate: (e) => (e.type = 'Error'), field: 'type', message: /Normal, Warning/ },
]);

test('a manifest written for Kubernetes parses, defaults and validates unchanged', () => {
  const manifest = `
apiVersion: v1
kind: Namespace
metadata:
  name: shop
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: shop
  labels: { app.kubernetes.io/name: web }
  annotations:
    kubernetes.io/change-cause: "first rollout"
spec:
  replicas: 3
  selector:
    matchLabels: { app: web }
  strategy:
    type: RollingUpdate
    rollingUpdate: { maxSurge: 1, maxUnavailable: 25% }
  template:
    metadata:
      labels: { app: web }
    spec:
      terminationGracePeriodSeconds: 10
      containers:
        - name: web
          image: nginx:1.25
          imagePullPolicy: IfNotPresent
          args: ["-g", "daemon off;"]
          ports:
            - name: http
              containerPort: 80
          env:
            - name: POD_IP
              valueFrom: { fieldRef: { fieldPath: status.podIP } }
            - name: MODE
              valueFrom: { configMapKeyRef: { name: web-conf, key: mode, optional: true } }
          envFrom:
            - secretRef: { name: web-creds }
          resources:
            requests: { cpu: 100m, memory: 64Mi }
            limits: { cpu: 0.5, memory: 128Mi }
          readinessProbe:
            httpGet: { path: /, port: http }
            initialDelaySeconds: 2
            periodSeconds: 5
          livenessProbe:
            tcpSocket: { port: 80 }
          volumeMounts:
            - { name: conf, mountPath: /etc/nginx/conf.d, readOnly: true }
            - { name: cache, mountPath: /var/cache/nginx }
      volumes:
        - name: conf
          configMap: { name: web-conf }
        - name: cache
          emptyDir: {}
      nodeSelector: { kubernetes.io/os: linux }
      tolerations:
        - { key: dedicated, operator: Equal, value: web, effect: NoSchedule }
---
apiVersion: v1
kind: Service
metadata: { name: web, namespace: shop }
spec:
  type: NodePort
  selector: { app: web }
  ports:
    - { name: http, port: 80, targetPort: http, nodePort: 30080 }
---
apiVersion: v1
kind: ConfigMap
metadata: { name: web-conf, namespace: shop }
data:
  mode: fast
  default.conf: |
    server { listen 80; }
---
apiVersion: v1
kind: Secret
metadata: { name: web-creds, namespace: shop }
stringData:
  TOKEN: hunter2
---
apiVersion: batch/v1
kind: Job
metadata: { name: migrate, namespace: shop }
spec:
  backoffLimit: 2
  ttlSecondsAfterFinished: 100
  template:
    spec:
      restartPolicy: Never
      containers:
        - { name: migrate, image: "registry.local:5000/tools/migrate@sha256:${'a'.repeat(64)}", command: [migrate, up] }
`;
  const kinds: string[] = [];
  for (const document of parseAllDocuments(manifest)) {
    const obj = defaultObject(parseObject(document.toJS()));
    validateObject(obj);
    assert.deepEqual(decodeObject(obj.kind, encodeObject(obj)), obj);
    kinds.push(obj.kind);
  }
  assert.deepEqual(kinds, ['Namespace', 'Deployment', 'Service', 'ConfigMap', 'Secret', 'Job']);
});

describe('CronJob, Lease, PriorityClass and EndpointSlice, added through their strategies alone', () => {
  test('a CronJob schedule must be a cron schedule or a macro, and its Jobs must be able to finish', () => {
    for (const schedule of [
      '*/5 * * * *',
      '0 0 1,15 * ?',
      '@hourly',
      '@every 1h30m',
      '0 9-17/2 * JAN-jun 1-5',
    ]) {
      validateObject(variant<CronJob>('CronJob', (cj) => (cj.spec.schedule = schedule)));
    }
    const bad: [string, RegExp][] = [
      ['* * * *', /has 4 fields; a schedule has five/],
      ['60 * * * *', /minute: 60 is out of range 0-59/],
      ['0 0 * * 7', /day of week: 7 is out of range 0-6/],
      ['*/0 * * * *', /step "0" must be a whole number above 0/],
      ['@fortnightly', /unknown macro/],
      ['', /is empty: a schedule is required/],
    ];
    for (const [schedule, message] of bad) {
      expectInvalid(
        variant<CronJob>('CronJob', (cj) => (cj.spec.schedule = schedule)),
        'spec.schedule',
        message,
      );
    }
    expectInvalid(
      variant<CronJob>('CronJob', (cj) => (cj.spec.timeZone = 'Mars/Olympus')),
      'spec.timeZone',
      /unknown time zone "Mars\/Olympus"/,
    );
    expectInvalid(
      variant<CronJob>(
        'CronJob',
        (cj) => (cj.spec.jobTemplate.spec!.template!.spec!.restartPolicy = 'Always'),
      ),
      'spec.jobTemplate.spec.template.spec.restartPolicy',
      /must use OnFailure or Never/,
    );
    expectInvalid(
      variant<CronJob>('CronJob', (cj) => (cj.metadata.name = 'n'.repeat(53))),
      'metadata.name',
      /no more than 52 characters/,
    );
    const defaulted = variant<CronJob>('CronJob', () => undefined);
    assert.equal(defaulted.spec.concurrencyPolicy, 'Allow');
    assert.equal(defaulted.spec.successfulJobsHistoryLimit, 3);
    assert.equal(defaulted.spec.failedJobsHistoryLimit, 1);
    assert.equal(defaulted.spec.jobTemplate.spec?.template?.spec?.dnsPolicy, 'ClusterFirst');
  });

  test('a Lease has a positive duration and RFC 3339 times', () => {
    expectInvalid(
      variant<Lease>('Lease', (l) => (l.spec.leaseDurationSeconds = 0)),
      'spec.leaseDurationSeconds',
      /greater than 0/,
    );
    expectInvalid(
      variant<Lease>('Lease', (l) => (l.spec.renewTime = 'yesterday')),
      'spec.renewTime',
      /not an RFC 3339 time/,
    );
  });

  test('a PriorityClass stays below the system range, and its value is fixed once created', () => {
    expectInvalid(
      variant<PriorityClass>('PriorityClass', (pc) => (pc.value = 1_000_000_001)),
      'value',
      /no more than 1000000000/,
    );
    expectInvalid(
      variant<PriorityClass>('PriorityClass', (pc) => (pc.metadata.name = 'system-mine')),
      'metadata.name',
      /"system-" prefix is reserved/,
    );
    const old = defaultObject(VALID.PriorityClass()) as PriorityClass;
    expectInvalid(
      variant<PriorityClass>('PriorityClass', (pc) => (pc.value = 5)),
      'value',
      /immutable/,
      old,
    );
    assert.equal(old.preemptionPolicy, 'PreemptLowerPriority');
  });

  test('an EndpointSlice holds addresses of its addressType, and the type is fixed', () => {
    expectInvalid(
      variant<EndpointSlice>('EndpointSlice', (es) => (es.endpoints![0]!.addresses = ['fd00::5'])),
      'endpoints[0].addresses[0]',
      /must be an IPv4 address/,
    );
    expectInvalid(
      variant<EndpointSlice>('EndpointSlice', (es) => (es.addressType = 'IPX')),
      'addressType',
      /must be one of IPv4, IPv6, FQDN/,
    );
    const old = defaultObject(VALID.EndpointSlice()) as EndpointSlice;
    expectInvalid(
      variant<EndpointSlice>('EndpointSlice', (es) => {
        es.addressType = 'FQDN';
        es.endpoints = [{ addresses: ['web-0.shop.example'] }];
      }),
      'addressType',
      /immutable/,
      old,
    );
    assert.equal(old.ports?.[0]?.protocol, 'TCP');
  });

  test('a Node’s pod CIDR is set once, then fixed (a node could otherwise move onto another’s)', () => {
    const old = defaultObject(VALID.Node()) as Node;
    expectInvalid(
      variant<Node>('Node', (n) => (n.spec.podCIDR = '10.244.2.0/24')),
      'spec.podCIDR',
      /may not be changed once set: was "10.244.1.0\/24"/,
      old,
    );
    const unset = defaultObject({ ...VALID.Node(), spec: {} } as Node) as Node;
    validateObject(defaultObject(VALID.Node()), unset);
  });

  test('no endpoint or external IP may be the node itself or link-local (Kubernetes refuses them too)', () => {
    const refused: [string, RegExp][] = [
      ['127.0.0.1', /loopback/],
      ['0.0.0.0', /unspecified/],
      ['169.254.169.254', /link-local/],
      ['224.0.0.5', /link-local multicast/],
    ];
    for (const [address, why] of refused) {
      expectInvalid(
        variant<EndpointSlice>('EndpointSlice', (es) => (es.endpoints![0]!.addresses = [address])),
        'endpoints[0].addresses[0]',
        why,
      );
      expectInvalid(
        variant<Service>('Service', (s) => (s.spec.externalIPs = ['192.0.2.7', address])),
        'spec.externalIPs[1]',
        why,
      );
    }
    expectInvalid(
      variant<EndpointSlice>('EndpointSlice', (es) => {
        es.addressType = 'IPv6';
        es.endpoints = [{ addresses: ['::1'] }];
      }),
      'endpoints[0].addresses[0]',
      /loopback/,
    );
  });
});
