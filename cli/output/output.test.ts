import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { parse as parseYaml } from 'yaml';
import { age, humanDuration } from '../../proto/printing/age.js';
import { describeObject } from './describe.js';
import { formatNames, formatObjects, parseOutputFormat } from './format.js';
import { podStatus } from '../../proto/printing/columns.js';
import { tableFor } from './table.js';
import { renderTable } from './table.js';

const S = 1000;
const M = 60 * S;
const H = 60 * M;
const D = 24 * H;

test('humanDuration matches kubectl', () => {
  const cases: [number, string][] = [
    [-5 * S, '<invalid>'],
    [-1 * S, '0s'],
    [0, '0s'],
    [5 * S, '5s'],
    [119 * S, '119s'],
    [2 * M, '2m'],
    [3 * M + 20 * S, '3m20s'],
    [17 * M, '17m'],
    [179 * M, '179m'],
    [3 * H, '3h'],
    [5 * H + 10 * M, '5h10m'],
    [30 * H, '30h'],
    [2 * D, '2d'],
    [3 * D + 4 * H, '3d4h'],
    [90 * D, '90d'],
    [2 * 365 * D + 10 * D, '2y10d'],
    [9 * 365 * D, '9y'],
  ];
  for (const [ms, want] of cases) assert.equal(humanDuration(ms), want, `${ms} ms`);
  assert.equal(age(undefined, 0), '<unknown>');
  assert.equal(age('2026-01-01T00:00:00Z', Date.parse('2026-01-01T00:00:05Z')), '5s');
});

test('renderTable aligns with three spaces and no trailing padding', () => {
  assert.equal(
    renderTable(
      ['NAME', 'AGE'],
      [
        ['web-longer', '5s'],
        ['a', '10m'],
      ],
    ),
    'NAME         AGE\nweb-longer   5s\na            10m\n',
  );
});

const now = Date.parse('2026-01-01T01:00:00Z');
const created = '2026-01-01T00:59:00Z';

const pod = {
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: { name: 'web-1', namespace: 'demo', creationTimestamp: created },
  spec: {
    nodeName: 'n1',
    containers: [
      { name: 'a', image: 'busybox' },
      { name: 'b', image: 'busybox' },
    ],
  },
  status: {
    phase: 'Running',
    podIP: '10.0.0.5',
    containerStatuses: [
      { name: 'a', ready: true, restartCount: 0, state: { running: {} } },
      {
        name: 'b',
        ready: false,
        restartCount: 2,
        state: { waiting: { reason: 'CrashLoopBackOff' } },
        lastState: { terminated: { finishedAt: '2026-01-01T00:59:30Z' } },
      },
    ],
  },
};

describe('tables per kind', () => {
  test('pods: NAME READY STATUS RESTARTS AGE; wide adds IP NODE NOMINATED NODE READINESS GATES; -A adds NAMESPACE', () => {
    const t = tableFor('Pod', [pod], { wide: false, withNamespace: false }, now);
    assert.deepEqual(t.headers, ['NAME', 'READY', 'STATUS', 'RESTARTS', 'AGE']);
    assert.deepEqual(t.rows[0], ['web-1', '1/2', 'CrashLoopBackOff', '2 (30s ago)', '60s']);
    const w = tableFor('Pod', [pod], { wide: true, withNamespace: true }, now);
    assert.deepEqual(w.headers, [
      'NAMESPACE',
      'NAME',
      'READY',
      'STATUS',
      'RESTARTS',
      'AGE',
      'IP',
      'NODE',
      'NOMINATED NODE',
      'READINESS GATES',
    ]);
    assert.deepEqual(w.rows[0]!.slice(-4), ['10.0.0.5', 'n1', '<none>', '<none>']);
    const gated = {
      ...pod,
      spec: { ...pod.spec, readinessGates: [{ conditionType: 'a' }, { conditionType: 'b' }] },
      status: {
        ...pod.status,
        nominatedNodeName: 'n2',
        conditions: [
          { type: 'a', status: 'True' },
          { type: 'b', status: 'False' },
        ],
      },
    };
    const g = tableFor('Pod', [gated], { wide: true, withNamespace: false }, now);
    assert.deepEqual(g.rows[0]!.slice(-2), ['n2', '1/2']);
  });

  test('deployments: NAME READY UP-TO-DATE AVAILABLE AGE', () => {
    const d = {
      kind: 'Deployment',
      metadata: { name: 'web', creationTimestamp: created },
      spec: {
        replicas: 3,
        selector: { matchLabels: { app: 'web' } },
        template: { spec: { containers: [{ name: 'web', image: 'nginx' }] } },
      },
      status: { readyReplicas: 2, updatedReplicas: 3, availableReplicas: 2 },
    };
    const t = tableFor(
      'Deployment',
      [d],
      { wide: true, withNamespace: false, namePrefix: 'deployment.apps/' },
      now,
    );
    assert.deepEqual(t.headers, [
      'NAME',
      'READY',
      'UP-TO-DATE',
      'AVAILABLE',
      'AGE',
      'CONTAINERS',
      'IMAGES',
      'SELECTOR',
    ]);
    assert.deepEqual(t.rows[0], ['deployment.apps/web', '2/3', '3', '2', '60s', 'web', 'nginx', 'app=web']);
  });

  test('configmaps count data; services print ports', () => {
    const cm = {
      kind: 'ConfigMap',
      metadata: { name: 'c', creationTimestamp: created },
      data: { a: '1', b: '2' },
    };
    assert.deepEqual(tableFor('ConfigMap', [cm], { wide: false, withNamespace: false }, now).rows[0], [
      'c',
      '2',
      '60s',
    ]);
    const svc = {
      kind: 'Service',
      metadata: { name: 's', creationTimestamp: created },
      spec: {
        clusterIP: '10.96.0.1',
        ports: [
          { port: 80, protocol: 'TCP' },
          { port: 53, nodePort: 30053, protocol: 'UDP' },
        ],
      },
    };
    assert.deepEqual(tableFor('Service', [svc], { wide: false, withNamespace: false }, now).rows[0], [
      's',
      'ClusterIP',
      '10.96.0.1',
      '<none>',
      '80/TCP,53:30053/UDP',
      '60s',
    ]);
  });

  test('the kinds added for the scheduler, controllers and services print kubectl’s columns', () => {
    const table = (kind: string, obj: Record<string, unknown>, wide = false) =>
      tableFor(
        kind,
        [{ kind, metadata: { name: 'x', creationTimestamp: created }, ...obj }],
        { wide, withNamespace: false },
        now,
      );
    const cron = table(
      'CronJob',
      {
        spec: {
          schedule: '*/5 * * * *',
          jobTemplate: { spec: { template: { spec: { containers: [{ name: 'c', image: 'busybox' }] } } } },
        },
        status: { active: [{ name: 'x-1' }], lastScheduleTime: created },
      },
      true,
    );
    assert.deepEqual(cron.headers, [
      'NAME',
      'SCHEDULE',
      'TIMEZONE',
      'SUSPEND',
      'ACTIVE',
      'LAST SCHEDULE',
      'AGE',
      'CONTAINERS',
      'IMAGES',
      'SELECTOR',
    ]);
    assert.deepEqual(cron.rows[0], [
      'x',
      '*/5 * * * *',
      '<none>',
      'False',
      '1',
      '60s',
      '60s',
      'c',
      'busybox',
      '<none>',
    ]);
    const pc = table('PriorityClass', { value: 1000, globalDefault: true });
    assert.deepEqual(pc.headers, ['NAME', 'VALUE', 'GLOBAL-DEFAULT', 'AGE', 'PREEMPTIONPOLICY']);
    assert.deepEqual(pc.rows[0], ['x', '1000', 'true', '60s', 'PreemptLowerPriority']);
    const lease = table('Lease', { spec: { holderIdentity: 'cp-1' } });
    assert.deepEqual(
      [lease.headers, lease.rows[0]],
      [
        ['NAME', 'HOLDER', 'AGE'],
        ['x', 'cp-1', '60s'],
      ],
    );
    const slice = table('EndpointSlice', {
      addressType: 'IPv4',
      ports: [{ port: 8080 }],
      endpoints: [
        { addresses: ['10.0.0.1'] },
        { addresses: ['10.0.0.2'] },
        { addresses: ['10.0.0.3'] },
        { addresses: ['10.0.0.4'] },
      ],
    });
    assert.deepEqual(slice.headers, ['NAME', 'ADDRESSTYPE', 'PORTS', 'ENDPOINTS', 'AGE']);
    assert.deepEqual(slice.rows[0], ['x', 'IPv4', '8080', '10.0.0.1,10.0.0.2,10.0.0.3 + 1 more...', '60s']);
  });

  test('pod status: terminating and init containers', () => {
    assert.equal(
      podStatus({ metadata: { deletionTimestamp: created }, status: { phase: 'Running' } }),
      'Terminating',
    );
    assert.equal(
      podStatus({
        spec: { initContainers: [{}, {}] },
        status: {
          phase: 'Pending',
          initContainerStatuses: [{ state: { terminated: { exitCode: 0 } } }, { state: { running: {} } }],
        },
      }),
      'Init:1/2',
    );
  });
});

describe('machine formats', () => {
  test('-o json prints a List for many and the object for one', () => {
    const list = JSON.parse(formatObjects([pod, pod], 'json', true));
    assert.equal(list.apiVersion, 'v1');
    assert.equal(list.kind, 'List');
    assert.equal(list.items.length, 2);
    assert.equal(JSON.parse(formatObjects([pod], 'json', false)).metadata.name, 'web-1');
    assert.equal(parseYaml(formatObjects([pod], 'yaml', false)).metadata.name, 'web-1');
  });

  test('-o name prints kind.group/name', () => {
    assert.equal(formatNames([pod], 'Pod', ''), 'pod/web-1\n');
    assert.equal(formatNames([{ metadata: { name: 'web' } }], 'Deployment', 'apps'), 'deployment.apps/web\n');
  });

  test('unknown -o is refused with the choices', () => {
    assert.equal(parseOutputFormat(undefined), 'table');
    assert.throws(() => parseOutputFormat('xml'), /use one of wide, json, yaml, name/);
  });
});

test('describe shows metadata, containers, conditions and events, not the last-applied annotation', () => {
  const obj = {
    ...pod,
    metadata: {
      ...pod.metadata,
      labels: { app: 'web' },
      annotations: { 'kubectl.kubernetes.io/last-applied-configuration': '{}', note: 'x' },
    },
    status: { ...pod.status, conditions: [{ type: 'Ready', status: 'False', reason: 'ContainersNotReady' }] },
  };
  const events = [
    {
      type: 'Warning',
      reason: 'BackOff',
      lastTimestamp: '2026-01-01T00:59:50Z',
      source: { component: 'agent' },
      message: 'Back-off restarting',
    },
  ];
  const text = describeObject(obj, events, now);
  assert.match(text, /^Name:\s+web-1$/m);
  assert.match(text, /^Namespace:\s+demo$/m);
  assert.match(text, /^Labels:\s+app=web$/m);
  assert.match(text, /^Annotations:\s+note=x$/m);
  assert.doesNotMatch(text, /last-applied/);
  assert.match(text, /Image:\s+busybox/);
  assert.match(text, /Ready\s+False\s+ContainersNotReady/);
  assert.match(text, /Warning\s+BackOff\s+10s\s+agent\s+Back-off restarting/);
  assert.doesNotMatch(describeObject(obj, undefined, now), /Events/);
});
