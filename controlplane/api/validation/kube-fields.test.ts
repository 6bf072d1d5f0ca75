/**
 * The fields of core/v1 PodSpec, Container, SecurityContext, PodSecurityContext, Probe, Volume,
 * VolumeMount and ResourceRequirements, of batch/v1 JobSpec and of core/v1 ServiceSpec that
 * Kubernetes 1.32 has (issue 9, item 15): each group is read from a manifest, defaulted,
 * validated, stored and read back as written; the values Kubernetes refuses are refused naming the
 * field; and what needs a kind skiff does not serve is refused saying which.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { parse } from 'yaml';
import { InvalidArgumentError } from '../../../proto/errors.js';
import type { Job, KubeObject, Pod, Service } from '../../../proto/gen/types.js';
import { decodeObject, encodeObject, parseObject } from '../../../proto/objects.js';
import { defaultObject, validateObject } from '../kinds/index.js';

/**
 * Every field `written` sets is in `actual` with the same value (lists item by item, of the same
 * length); `actual` may hold more (the defaults).
 */
function assertWritten(actual: unknown, written: unknown, path = ''): void {
  if (Array.isArray(written)) {
    assert.ok(Array.isArray(actual), `${path}: expected a list, got ${JSON.stringify(actual)}`);
    assert.equal(actual.length, written.length, `${path}: list length`);
    written.forEach((item, i) => assertWritten(actual[i], item, `${path}[${i}]`));
    return;
  }
  if (typeof written === 'object' && written !== null) {
    assert.ok(
      typeof actual === 'object' && actual !== null,
      `${path}: expected an object, got ${JSON.stringify(actual)}`,
    );
    for (const [key, value] of Object.entries(written)) {
      assertWritten((actual as Record<string, unknown>)[key], value, path === '' ? key : `${path}.${key}`);
    }
    return;
  }
  assert.equal(actual, written, `${path}: returned as written`);
}

/** A manifest as the CLI reads it: YAML 1.1, as kubectl (0644 is octal). */
function read(manifest: string | object): unknown {
  return typeof manifest === 'string' ? parse(manifest, { version: '1.1' }) : manifest;
}

/**
 * The API server's path for a manifest, without the store: read strictly, default, validate,
 * encode as stored and decode as read back. Returns what a client would get.
 */
function store(manifest: string | object): KubeObject {
  const written = read(manifest);
  const object = defaultObject(parseObject(written));
  validateObject(object);
  const returned = decodeObject(object.kind, encodeObject(object));
  assert.deepEqual(returned, object, 'the stored object reads back as it was written');
  assertWritten(returned, written);
  return returned;
}

function refused(manifest: string | object, field: string, message: RegExp): void {
  const written = read(manifest);
  assert.throws(
    () => validateObject(defaultObject(parseObject(written))),
    (err: unknown) => {
      assert.ok(err instanceof InvalidArgumentError, `expected InvalidArgumentError, got ${String(err)}`);
      assert.equal(err.field, field, err.message);
      assert.match(err.message, message);
      assert.doesNotMatch(err.message, /unknown field/);
      return true;
    },
  );
}

/** A Pod with `spec` merged over one plain container named `app`. */
function pod(
  spec: Record<string, unknown>,
  containerExtra: Record<string, unknown> = {},
): Record<string, unknown> {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: 'web', namespace: 'shop', labels: { app: 'web' } },
    spec: {
      containers: [{ name: 'app', image: 'registry.local/web:1.2', ...containerExtra }],
      ...spec,
    },
  };
}

/** A Deployment whose pod template has `spec` merged over one plain container. */
function deployment(spec: Record<string, unknown>): Record<string, unknown> {
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name: 'web', namespace: 'shop' },
    spec: {
      selector: { matchLabels: { app: 'web' } },
      template: {
        metadata: { labels: { app: 'web' } },
        spec: { containers: [{ name: 'app', image: 'registry.local/web:1.2' }], ...spec },
      },
    },
  };
}

function job(spec: Record<string, unknown>, podSpec: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    apiVersion: 'batch/v1',
    kind: 'Job',
    metadata: { name: 'shard', namespace: 'shop' },
    spec: {
      template: {
        spec: { restartPolicy: 'Never', containers: [{ name: 'work', image: 'busybox:1.36' }], ...podSpec },
      },
      ...spec,
    },
  };
}

function service(spec: Record<string, unknown>): Record<string, unknown> {
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name: 'web', namespace: 'shop' },
    spec: { selector: { app: 'web' }, ports: [{ name: 'http', port: 80 }], ...spec },
  };
}

describe('pod placement: topologySpreadConstraints, schedulingGates, readinessGates, preemption, overhead, os', () => {
  test('are accepted, stored and returned as written', () => {
    store(`
apiVersion: v1
kind: Pod
metadata: { name: web, namespace: shop, labels: { app: web } }
spec:
  containers: [{ name: app, image: "registry.local/web:1.2" }]
  topologySpreadConstraints:
    - maxSkew: 1
      topologyKey: topology.kubernetes.io/zone
      whenUnsatisfiable: DoNotSchedule
      labelSelector: { matchLabels: { app: web } }
      minDomains: 2
      nodeAffinityPolicy: Honor
      nodeTaintsPolicy: Ignore
      matchLabelKeys: [pod-template-hash]
    - maxSkew: 2
      topologyKey: kubernetes.io/hostname
      whenUnsatisfiable: ScheduleAnyway
  schedulingGates: [{ name: example.com/quota }]
  readinessGates: [{ conditionType: example.com/feature-1 }]
  preemptionPolicy: Never
  os: { name: linux }
  affinity:
    podAntiAffinity:
      requiredDuringSchedulingIgnoredDuringExecution:
        - topologyKey: kubernetes.io/hostname
          labelSelector: { matchLabels: { app: web } }
          matchLabelKeys: [pod-template-hash]
          mismatchLabelKeys: [tenant]
`);
    // Overhead (what the pod's sandbox costs) is a resource list, numbers read as quantities.
    const withOverhead = store(deployment({ overhead: { cpu: '250m', memory: '120Mi' } }));
    assert.equal(withOverhead.kind, 'Deployment');
    const bare = parseObject(deployment({ overhead: { cpu: 0.5 } })) as {
      spec: { template: { spec: Pod['spec'] } };
    };
    assert.deepEqual(bare.spec.template.spec.overhead, { cpu: '0.5' }, 'a bare number is a quantity');
  });

  const cases: [string, Record<string, unknown>, string, RegExp][] = [
    [
      'maxSkew 0',
      {
        topologySpreadConstraints: [{ maxSkew: 0, topologyKey: 'zone', whenUnsatisfiable: 'DoNotSchedule' }],
      },
      'spec.topologySpreadConstraints[0].maxSkew',
      /greater than zero/,
    ],
    [
      'an unknown whenUnsatisfiable',
      { topologySpreadConstraints: [{ maxSkew: 1, topologyKey: 'zone', whenUnsatisfiable: 'Maybe' }] },
      'spec.topologySpreadConstraints[0].whenUnsatisfiable',
      /DoNotSchedule, ScheduleAnyway/,
    ],
    [
      'minDomains with ScheduleAnyway',
      {
        topologySpreadConstraints: [
          { maxSkew: 1, topologyKey: 'zone', whenUnsatisfiable: 'ScheduleAnyway', minDomains: 2 },
        ],
      },
      'spec.topologySpreadConstraints[0].minDomains',
      /only when whenUnsatisfiable is DoNotSchedule/,
    ],
    [
      'two constraints on the same key and action',
      {
        topologySpreadConstraints: [
          { maxSkew: 1, topologyKey: 'zone', whenUnsatisfiable: 'DoNotSchedule' },
          { maxSkew: 2, topologyKey: 'zone', whenUnsatisfiable: 'DoNotSchedule' },
        ],
      },
      'spec.topologySpreadConstraints[1]',
      /duplicate constraint for topologyKey "zone"/,
    ],
    [
      'matchLabelKeys without a labelSelector',
      {
        topologySpreadConstraints: [
          { maxSkew: 1, topologyKey: 'zone', whenUnsatisfiable: 'DoNotSchedule', matchLabelKeys: ['app'] },
        ],
      },
      'spec.topologySpreadConstraints[0].matchLabelKeys',
      /labelSelector/,
    ],
    [
      'a matchLabelKey also in the labelSelector',
      {
        topologySpreadConstraints: [
          {
            maxSkew: 1,
            topologyKey: 'zone',
            whenUnsatisfiable: 'DoNotSchedule',
            labelSelector: { matchLabels: { app: 'web' } },
            matchLabelKeys: ['app'],
          },
        ],
      },
      'spec.topologySpreadConstraints[0].matchLabelKeys[0]',
      /also a key of labelSelector/,
    ],
    [
      'a bad nodeTaintsPolicy',
      {
        topologySpreadConstraints: [
          { maxSkew: 1, topologyKey: 'zone', whenUnsatisfiable: 'DoNotSchedule', nodeTaintsPolicy: 'Always' },
        ],
      },
      'spec.topologySpreadConstraints[0].nodeTaintsPolicy',
      /Honor, Ignore/,
    ],
    [
      'a duplicate scheduling gate',
      { schedulingGates: [{ name: 'a' }, { name: 'a' }] },
      'spec.schedulingGates[1].name',
      /duplicate scheduling gate "a"/,
    ],
    [
      'a scheduling gate that is not a qualified name',
      { schedulingGates: [{ name: 'a b' }] },
      'spec.schedulingGates[0].name',
      /name part must consist of letters/,
    ],
    [
      'nodeName with scheduling gates',
      { nodeName: 'node-1', schedulingGates: [{ name: 'a' }] },
      'spec.nodeName',
      /schedulingGates/,
    ],
    [
      'a readiness gate that is not a qualified name',
      { readinessGates: [{ conditionType: 'not/a/name' }] },
      'spec.readinessGates[0].conditionType',
      /qualified name/,
    ],
    [
      'an unknown preemptionPolicy',
      { preemptionPolicy: 'Sometimes' },
      'spec.preemptionPolicy',
      /PreemptLowerPriority, Never/,
    ],
    ['an unknown resource in overhead', { overhead: { gpu: '1' } }, 'spec.overhead[gpu]', /domain-qualified/],
    ['a negative overhead', { overhead: { memory: '-1Mi' } }, 'spec.overhead[memory]', /negative/],
    ['an unknown os', { os: { name: 'plan9' } }, 'spec.os.name', /linux, windows/],
    [
      'matchLabelKeys also in mismatchLabelKeys',
      {
        affinity: {
          podAffinity: {
            requiredDuringSchedulingIgnoredDuringExecution: [
              { topologyKey: 'zone', labelSelector: {}, matchLabelKeys: ['a'], mismatchLabelKeys: ['a'] },
            ],
          },
        },
      },
      'spec.affinity.podAffinity.requiredDuringSchedulingIgnoredDuringExecution[0].matchLabelKeys[0]',
      /also in mismatchLabelKeys/,
    ],
  ];
  for (const [name, spec, field, message] of cases) {
    test(`${name} → ${field}`, () => refused(pod(spec), field, message));
  }

  test('runtimeClassName: none is valid, since no RuntimeClass kind is served', () => {
    refused(pod({ runtimeClassName: '' }), 'spec.runtimeClassName', /DNS-1123 subdomain|non-empty|empty/);
    refused(
      pod({ runtimeClassName: 'gvisor' }),
      'spec.runtimeClassName',
      /RuntimeClass "gvisor" does not exist: skiff serves no RuntimeClass kind/,
    );
    refused(
      deployment({ runtimeClassName: 'kata' }),
      'spec.template.spec.runtimeClassName',
      /RuntimeClass "kata" does not exist/,
    );
    refused(pod({ runtimeClassName: 'Not_A_Name' }), 'spec.runtimeClassName', /DNS-1123 subdomain/);
  });
});

describe('DNS and hosts: dnsConfig, hostAliases, setHostnameAsFQDN, shareProcessNamespace, hostUsers, serviceAccount', () => {
  test('are accepted, stored and returned as written, false and empty values included', () => {
    store(`
apiVersion: v1
kind: Pod
metadata: { name: web, namespace: shop }
spec:
  containers: [{ name: app, image: "registry.local/web:1.2" }]
  dnsPolicy: None
  dnsConfig:
    nameservers: [10.96.0.10, "fd00::10"]
    searches: [shop.svc.cluster.local, svc.cluster.local., example.com]
    options:
      - { name: ndots, value: "2" }
      - { name: edns0 }
      - { name: timeout, value: "" }
  hostAliases:
    - ip: 127.0.0.1
      hostnames: [foo.local, bar.local]
    - ip: "::1"
  hostname: web
  subdomain: shop
  setHostnameAsFQDN: false
  shareProcessNamespace: true
  hostUsers: false
  serviceAccountName: builder
  serviceAccount: builder
`);
  });

  test('serviceAccount is the old name of serviceAccountName; a Pod that names none runs as default', () => {
    const legacy = store(pod({ serviceAccount: 'builder' })) as Pod;
    assert.equal(legacy.spec.serviceAccountName, 'builder');
    const both = defaultObject(parseObject(pod({ serviceAccountName: 'new', serviceAccount: 'old' }))) as Pod;
    assert.deepEqual(
      [both.spec.serviceAccountName, both.spec.serviceAccount],
      ['new', 'new'],
      'the new name wins',
    );
    const plain = store(pod({})) as Pod;
    assert.equal(plain.spec.serviceAccountName, 'default');
    assert.equal(plain.spec.serviceAccount, undefined, 'the old name is not added');
    const template = store(deployment({})) as { spec: { template: { spec: Pod['spec'] } } };
    assert.equal(template.spec.template.spec.serviceAccountName, undefined, 'templates are not given one');
  });

  const cases: [string, Record<string, unknown>, string, RegExp][] = [
    [
      'dnsPolicy None without dnsConfig',
      { dnsPolicy: 'None' },
      'spec.dnsConfig',
      /required when dnsPolicy is None/,
    ],
    [
      'dnsPolicy None without nameservers',
      { dnsPolicy: 'None', dnsConfig: { searches: ['a.b'] } },
      'spec.dnsConfig.nameservers',
      /at least one nameserver/,
    ],
    [
      'four nameservers',
      { dnsConfig: { nameservers: ['1.1.1.1', '1.0.0.1', '8.8.8.8', '8.8.4.4'] } },
      'spec.dnsConfig.nameservers',
      /at most 3/,
    ],
    [
      'a nameserver that is not an IP',
      { dnsConfig: { nameservers: ['dns.local'] } },
      'spec.dnsConfig.nameservers[0]',
      /IPv4 or IPv6/,
    ],
    [
      'a resolver option whose value would add a nameserver line to resolv.conf',
      { dnsConfig: { options: [{ name: 'ndots', value: '1\nnameserver 203.0.113.66' }] } },
      'spec.dnsConfig.options[0].value',
      /may not contain spaces, tabs, newlines/,
    ],
    [
      'a resolver option name with a space',
      { dnsConfig: { options: [{ name: 'ndots:1 rotate' }] } },
      'spec.dnsConfig.options[0].name',
      /may not contain spaces/,
    ],
    [
      '33 search domains',
      { dnsConfig: { searches: Array.from({ length: 33 }, (_, i) => `d${i}.local`) } },
      'spec.dnsConfig.searches',
      /at most 32/,
    ],
    [
      'a search domain with a space',
      { dnsConfig: { searches: ['bad domain'] } },
      'spec.dnsConfig.searches[0]',
      /DNS-1123 subdomain/,
    ],
    [
      'an option without a name',
      { dnsConfig: { options: [{ value: '1' }] } },
      'spec.dnsConfig.options[0].name',
      /required/,
    ],
    [
      'a host alias with a bad ip',
      { hostAliases: [{ ip: '300.1.1.1', hostnames: ['a'] }] },
      'spec.hostAliases[0].ip',
      /IPv4 or IPv6/,
    ],
    [
      'a host alias with a bad hostname',
      { hostAliases: [{ ip: '10.0.0.1', hostnames: ['A_B'] }] },
      'spec.hostAliases[0].hostnames[0]',
      /DNS-1123 subdomain/,
    ],
    [
      'shareProcessNamespace with hostPID',
      { shareProcessNamespace: true, hostPID: true },
      'spec.shareProcessNamespace',
      /hostPID/,
    ],
    [
      'hostUsers false with hostNetwork',
      { hostUsers: false, hostNetwork: true },
      'spec.hostNetwork',
      /hostUsers is false/,
    ],
    ['a bad serviceAccount', { serviceAccount: 'Bad_Name' }, 'spec.serviceAccountName', /DNS-1123 subdomain/],
  ];
  for (const [name, spec, field, message] of cases) {
    test(`${name} → ${field}`, () => refused(pod(spec), field, message));
  }
});

describe('security contexts: seccompProfile, appArmorProfile, seLinuxOptions, windowsOptions, procMount, fsGroupChangePolicy', () => {
  test('are accepted, stored and returned as written', () => {
    store(`
apiVersion: v1
kind: Pod
metadata: { name: web, namespace: shop }
spec:
  hostUsers: false
  securityContext:
    runAsUser: 1000
    runAsGroup: 3000
    runAsNonRoot: true
    fsGroup: 2000
    fsGroupChangePolicy: OnRootMismatch
    supplementalGroups: [4000]
    supplementalGroupsPolicy: Strict
    seccompProfile: { type: RuntimeDefault }
    appArmorProfile: { type: Localhost, localhostProfile: k8s-apparmor-example-deny-write }
    seLinuxOptions: { user: system_u, role: system_r, type: spc_t, level: "s0:c123,c456" }
    seLinuxChangePolicy: MountOption
    windowsOptions: { gmsaCredentialSpecName: webapp-gmsa, runAsUserName: "NT AUTHORITY\\\\NETWORK SERVICE", hostProcess: false }
    sysctls: [{ name: net.core.somaxconn, value: "1024" }]
  containers:
    - name: app
      image: "registry.local/web:1.2"
      securityContext:
        allowPrivilegeEscalation: false
        readOnlyRootFilesystem: true
        privileged: false
        capabilities: { drop: [ALL], add: [NET_BIND_SERVICE] }
        seccompProfile: { type: Localhost, localhostProfile: profiles/audit.json }
        appArmorProfile: { type: Unconfined }
        seLinuxOptions: { level: "s0:c1,c2" }
        procMount: Unmasked
        windowsOptions: { runAsUserName: ContainerUser }
`);
  });

  const cases: [string, Record<string, unknown>, Record<string, unknown>, string, RegExp][] = [
    [
      'an unknown seccomp type',
      { securityContext: { seccompProfile: { type: 'Strict' } } },
      {},
      'spec.securityContext.seccompProfile.type',
      /RuntimeDefault, Unconfined, Localhost/,
    ],
    [
      'Localhost seccomp without a profile',
      { securityContext: { seccompProfile: { type: 'Localhost' } } },
      {},
      'spec.securityContext.seccompProfile.localhostProfile',
      /required when the seccomp type is Localhost/,
    ],
    [
      'a seccomp profile outside the profile directory',
      {},
      { securityContext: { seccompProfile: { type: 'Localhost', localhostProfile: '../etc/x.json' } } },
      'spec.containers[0].securityContext.seccompProfile.localhostProfile',
      /'\.\.'/,
    ],
    [
      'a localhostProfile without Localhost',
      {},
      { securityContext: { appArmorProfile: { type: 'RuntimeDefault', localhostProfile: 'x' } } },
      'spec.containers[0].securityContext.appArmorProfile.localhostProfile',
      /only when the AppArmor type is Localhost/,
    ],
    [
      'an AppArmor profile padded with spaces',
      {},
      { securityContext: { appArmorProfile: { type: 'Localhost', localhostProfile: ' x' } } },
      'spec.containers[0].securityContext.appArmorProfile.localhostProfile',
      /whitespace/,
    ],
    [
      'an unknown fsGroupChangePolicy',
      { securityContext: { fsGroupChangePolicy: 'Sometimes' } },
      {},
      'spec.securityContext.fsGroupChangePolicy',
      /OnRootMismatch, Always/,
    ],
    [
      'an empty fsGroupChangePolicy',
      { securityContext: { fsGroupChangePolicy: '' } },
      {},
      'spec.securityContext.fsGroupChangePolicy',
      /unsupported value ""/,
    ],
    [
      'an unknown supplementalGroupsPolicy',
      { securityContext: { supplementalGroupsPolicy: 'Union' } },
      {},
      'spec.securityContext.supplementalGroupsPolicy',
      /Merge, Strict/,
    ],
    [
      'an unknown procMount',
      {},
      { securityContext: { procMount: 'Masked' } },
      'spec.containers[0].securityContext.procMount',
      /Default, Unmasked/,
    ],
    [
      'an Unmasked /proc with the host user namespace',
      {},
      { securityContext: { procMount: 'Unmasked' } },
      'spec.containers[0].securityContext.procMount',
      /hostUsers: false/,
    ],
    [
      'a runAsUser above 2^31-1',
      { securityContext: { runAsUser: 2 ** 31 } },
      {},
      'spec.securityContext.runAsUser',
      /between 0 and 2147483647/,
    ],
    [
      'no privilege escalation with CAP_SYS_ADMIN',
      {},
      { securityContext: { allowPrivilegeEscalation: false, capabilities: { add: ['CAP_SYS_ADMIN'] } } },
      'spec.containers[0].securityContext.allowPrivilegeEscalation',
      /CAP_SYS_ADMIN/,
    ],
    [
      'a duplicate sysctl',
      {
        securityContext: {
          sysctls: [
            { name: 'kernel.shm_rmid_forced', value: '1' },
            { name: 'kernel.shm_rmid_forced', value: '0' },
          ],
        },
      },
      {},
      'spec.securityContext.sysctls[1].name',
      /duplicate sysctl/,
    ],
    [
      'a net sysctl with hostNetwork',
      { hostNetwork: true, securityContext: { sysctls: [{ name: 'net.core.somaxconn', value: '1' }] } },
      {},
      'spec.securityContext.sysctls[0].name',
      /hostNetwork/,
    ],
    [
      'a gmsaCredentialSpecName that is not a name',
      { securityContext: { windowsOptions: { gmsaCredentialSpecName: 'No Way' } } },
      {},
      'spec.securityContext.windowsOptions.gmsaCredentialSpecName',
      /DNS-1123 subdomain/,
    ],
    [
      'a runAsUserName with two backslashes',
      {},
      { securityContext: { windowsOptions: { runAsUserName: 'a\\b\\c' } } },
      'spec.containers[0].securityContext.windowsOptions.runAsUserName',
      /more than one backslash/,
    ],
    [
      'windowsOptions in a linux pod',
      { os: { name: 'linux' } },
      { securityContext: { windowsOptions: { runAsUserName: 'u' } } },
      'spec.containers[0].securityContext.windowsOptions',
      /linux pod/,
    ],
    [
      'seccomp in a windows pod',
      { os: { name: 'windows' }, securityContext: { seccompProfile: { type: 'RuntimeDefault' } } },
      {},
      'spec.securityContext.seccompProfile',
      /windows pod/,
    ],
    [
      'a privileged container in a windows pod',
      { os: { name: 'windows' } },
      { securityContext: { privileged: false } },
      'spec.containers[0].securityContext.privileged',
      /windows pod/,
    ],
    [
      'hostProcess without the host network',
      { securityContext: { windowsOptions: { hostProcess: true } } },
      {},
      'spec.hostNetwork',
      /hostProcess/,
    ],
  ];
  for (const [name, spec, container, field, message] of cases) {
    test(`${name} → ${field}`, () => refused(pod(spec, container), field, message));
  }

  test('windowsOptions and seLinuxOptions without spec.os are kept for the node to ignore', () => {
    store(
      pod(
        {
          securityContext: {
            windowsOptions: { runAsUserName: 'ContainerUser' },
            seLinuxOptions: { type: 'container_t' },
          },
        },
        { securityContext: { windowsOptions: { gmsaCredentialSpec: '{"x":1}' } } },
      ),
    );
    store(
      pod({
        os: { name: 'windows' },
        hostNetwork: true,
        securityContext: { windowsOptions: { hostProcess: true } },
      }),
    );
  });
});

describe('containers: native sidecars, resizePolicy, grpc probes, subPathExpr, mountPropagation, recursiveReadOnly', () => {
  test('are accepted, stored and returned as written', () => {
    const stored = store(`
apiVersion: v1
kind: Pod
metadata: { name: web, namespace: shop }
spec:
  restartPolicy: Always
  initContainers:
    - name: log-shipper
      image: "registry.local/shipper:2"
      restartPolicy: Always
      startupProbe: { exec: { command: [test, -e, /tmp/ready] } }
      readinessProbe: { grpc: { port: 9090, service: shipper } }
      lifecycle: { preStop: { sleep: { seconds: 5 } } }
      volumeMounts: [{ name: logs, mountPath: /var/log/app, readOnly: true, recursiveReadOnly: IfPossible }]
    - name: migrate
      image: "registry.local/migrate:2"
  containers:
    - name: app
      image: "registry.local/web:1.2"
      env: [{ name: POD_NAME, valueFrom: { fieldRef: { fieldPath: metadata.name } } }]
      resizePolicy:
        - { resourceName: cpu, restartPolicy: NotRequired }
        - { resourceName: memory, restartPolicy: RestartContainer }
      livenessProbe: { grpc: { port: 8080 }, periodSeconds: 3 }
      volumeMounts:
        - { name: logs, mountPath: /var/log/app, subPathExpr: "$(POD_NAME)" }
        - { name: host, mountPath: /host, mountPropagation: HostToContainer, readOnly: true }
        - { name: shared, mountPath: /shared, mountPropagation: Bidirectional }
      securityContext: { privileged: true }
  volumes:
    - { name: logs, emptyDir: {} }
    - { name: host, hostPath: { path: /var/lib/app } }
    - { name: shared, hostPath: { path: /mnt/shared, type: DirectoryOrCreate } }
`) as Pod;
    // The gRPC service defaults to "" (the server as a whole), as Kubernetes fills it in.
    assert.equal(stored.spec.containers![0]!.livenessProbe!.grpc!.service, '');
    assert.equal(stored.spec.initContainers![0]!.readinessProbe!.grpc!.service, 'shipper');
  });

  const cases: [string, Record<string, unknown>, Record<string, unknown>, string, RegExp][] = [
    [
      'restartPolicy on a regular container',
      {},
      { restartPolicy: 'Always' },
      'spec.containers[0].restartPolicy',
      /only for init containers/,
    ],
    [
      'an init container restartPolicy other than Always',
      { initContainers: [{ name: 'i', image: 'b', restartPolicy: 'OnFailure' }] },
      {},
      'spec.initContainers[0].restartPolicy',
      /must be one of Always/,
    ],
    [
      'a probe on an init container that is not a sidecar',
      { initContainers: [{ name: 'i', image: 'b', livenessProbe: { grpc: { port: 1 } } }] },
      {},
      'spec.initContainers[0].livenessProbe',
      /unless restartPolicy is Always/,
    ],
    [
      'resizePolicy on an init container',
      {
        initContainers: [
          { name: 'i', image: 'b', resizePolicy: [{ resourceName: 'cpu', restartPolicy: 'NotRequired' }] },
        ],
      },
      {},
      'spec.initContainers[0].resizePolicy',
      /init containers/,
    ],
    [
      'resizePolicy for an unknown resource',
      {},
      { resizePolicy: [{ resourceName: 'gpu', restartPolicy: 'NotRequired' }] },
      'spec.containers[0].resizePolicy[0].resourceName',
      /cpu, memory/,
    ],
    [
      'resizePolicy named twice',
      {},
      {
        resizePolicy: [
          { resourceName: 'cpu', restartPolicy: 'NotRequired' },
          { resourceName: 'cpu', restartPolicy: 'NotRequired' },
        ],
      },
      'spec.containers[0].resizePolicy[1].resourceName',
      /duplicate/,
    ],
    [
      'a restarting resize in a pod that never restarts',
      { restartPolicy: 'Never' },
      { resizePolicy: [{ resourceName: 'memory', restartPolicy: 'RestartContainer' }] },
      'spec.containers[0].resizePolicy[0].restartPolicy',
      /NotRequired when the pod's restartPolicy is Never/,
    ],
    [
      'a grpc probe port out of range',
      {},
      { readinessProbe: { grpc: { port: 70000 } } },
      'spec.containers[0].readinessProbe.grpc.port',
      /between 1 and 65535/,
    ],
    [
      'grpc and exec in one probe',
      {},
      { livenessProbe: { grpc: { port: 1 }, exec: { command: ['true'] } } },
      'spec.containers[0].livenessProbe',
      /only one handler, found exec and grpc/,
    ],
    [
      'terminationGracePeriodSeconds on a readiness probe',
      {},
      { readinessProbe: { grpc: { port: 1 }, terminationGracePeriodSeconds: 5 } },
      'spec.containers[0].readinessProbe.terminationGracePeriodSeconds',
      /readiness/,
    ],
    [
      'subPath and subPathExpr together',
      { volumes: [{ name: 'v', emptyDir: {} }] },
      { volumeMounts: [{ name: 'v', mountPath: '/v', subPath: 'a', subPathExpr: '$(B)' }] },
      'spec.containers[0].volumeMounts[0].subPathExpr',
      /together with subPath/,
    ],
    [
      'a subPathExpr that climbs out',
      { volumes: [{ name: 'v', emptyDir: {} }] },
      { volumeMounts: [{ name: 'v', mountPath: '/v', subPathExpr: '../$(B)' }] },
      'spec.containers[0].volumeMounts[0].subPathExpr',
      /'\.\.'/,
    ],
    [
      'an unknown mountPropagation',
      { volumes: [{ name: 'v', emptyDir: {} }] },
      { volumeMounts: [{ name: 'v', mountPath: '/v', mountPropagation: 'Shared' }] },
      'spec.containers[0].volumeMounts[0].mountPropagation',
      /None, HostToContainer, Bidirectional/,
    ],
    [
      'Bidirectional propagation in an unprivileged container',
      { volumes: [{ name: 'v', emptyDir: {} }] },
      { volumeMounts: [{ name: 'v', mountPath: '/v', mountPropagation: 'Bidirectional' }] },
      'spec.containers[0].volumeMounts[0].mountPropagation',
      /privileged/,
    ],
    [
      'recursiveReadOnly on a writable mount',
      { volumes: [{ name: 'v', emptyDir: {} }] },
      { volumeMounts: [{ name: 'v', mountPath: '/v', recursiveReadOnly: 'Enabled' }] },
      'spec.containers[0].volumeMounts[0].recursiveReadOnly',
      /readOnly is true/,
    ],
    [
      'an unknown recursiveReadOnly',
      { volumes: [{ name: 'v', emptyDir: {} }] },
      { volumeMounts: [{ name: 'v', mountPath: '/v', readOnly: true, recursiveReadOnly: 'Yes' }] },
      'spec.containers[0].volumeMounts[0].recursiveReadOnly',
      /Disabled, IfPossible, Enabled/,
    ],
  ];
  for (const [name, spec, container, field, message] of cases) {
    test(`${name} → ${field}`, () => refused(pod(spec, container), field, message));
  }
});

describe('what needs a kind skiff does not serve: volumeDevices, resources.claims, resourceClaims', () => {
  test('read, and are refused saying what they need', () => {
    refused(
      pod(
        { volumes: [{ name: 'raw', emptyDir: {} }] },
        { volumeDevices: [{ name: 'raw', devicePath: '/dev/xvda' }] },
      ),
      'spec.containers[0].volumeDevices[0].name',
      /not a persistentVolumeClaim or ephemeral volume.*PersistentVolumeClaim kind, which skiff does not serve/,
    );
    refused(
      pod({}, { resources: { claims: [{ name: 'gpu', request: 'big' }] } }),
      'spec.containers[0].resources.claims[0].name',
      /ResourceClaim kind of resource.k8s.io, which skiff does not serve/,
    );
    refused(
      pod({ resourceClaims: [{ name: 'gpu', resourceClaimTemplateName: 'gpu-template' }] }),
      'spec.resourceClaims',
      /ResourceClaim and ResourceClaimTemplate kinds \(resource.k8s.io\), which skiff does not serve/,
    );
  });
});

describe('pod-level resources', () => {
  test('are accepted when they cover what the containers request', () => {
    store(
      pod(
        { resources: { requests: { cpu: '1', memory: '256Mi' }, limits: { cpu: '2', memory: '512Mi' } } },
        { resources: { requests: { cpu: '500m', memory: '128Mi' }, limits: { cpu: '1' } } },
      ),
    );
  });
  test('are refused for other resources, below the containers, or above their own limits', () => {
    refused(
      pod({ resources: { limits: { 'ephemeral-storage': '1Gi' } } }),
      'spec.resources.limits[ephemeral-storage]',
      /cpu, memory/,
    );
    refused(
      pod({ resources: { requests: { cpu: '100m' } } }, { resources: { requests: { cpu: '200m' } } }),
      'spec.resources.requests[cpu]',
      /less than what the containers request/,
    );
    refused(
      pod({ resources: { limits: { cpu: '1' } } }, { resources: { limits: { cpu: '2' } } }),
      'spec.containers[0].resources.limits[cpu]',
      /more than the pod-level limit/,
    );
    refused(
      pod({ resources: { requests: { cpu: '2' }, limits: { cpu: '1' } } }),
      'spec.resources.requests[cpu]',
      /more than the limit/,
    );
  });
});

describe('ephemeral containers', () => {
  test('are checked as containers, and refused on create (Kubernetes adds them to a running pod)', () => {
    refused(
      pod(
        {
          ephemeralContainers: [
            {
              name: 'debugger',
              image: 'busybox:1.36',
              command: ['sh'],
              stdin: true,
              tty: true,
              targetContainerName: 'app',
              env: [{ name: 'A', value: 'b' }],
              securityContext: { capabilities: { add: ['SYS_PTRACE'] } },
            },
          ],
        },
        {},
      ),
      'spec.ephemeralContainers',
      /cannot be set on create/,
    );
  });
  const cases: [string, Record<string, unknown>, string, RegExp][] = [
    [
      'a target that is not a container',
      { targetContainerName: 'nope' },
      'spec.ephemeralContainers[0].targetContainerName',
      /not one of the pod's containers/,
    ],
    ['ports', { ports: [{ containerPort: 80 }] }, 'spec.ephemeralContainers[0].ports', /ephemeral container/],
    [
      'a probe',
      { readinessProbe: { grpc: { port: 1 } } },
      'spec.ephemeralContainers[0].readinessProbe',
      /ephemeral container/,
    ],
    [
      'resources',
      { resources: { limits: { cpu: '1' } } },
      'spec.ephemeralContainers[0].resources',
      /ephemeral container/,
    ],
    [
      'the name of a container',
      { name: 'app' },
      'spec.ephemeralContainers[0].name',
      /duplicate container name "app"/,
    ],
  ];
  for (const [name, extra, field, message] of cases) {
    test(`${name} → ${field}`, () =>
      refused(
        pod({ ephemeralContainers: [{ name: 'debugger', image: 'busybox', ...extra }] }),
        field,
        message,
      ));
  }
  test('are refused in a pod template, as Kubernetes refuses them there', () => {
    refused(
      deployment({ ephemeralContainers: [{ name: 'debugger', image: 'busybox' }] }),
      'spec.template.spec.ephemeralContainers',
      /may not be set in a pod template/,
    );
  });
});

describe('volumes: projected and downwardAPI are served; the others are refused naming what they need', () => {
  test('projected and downwardAPI volumes are accepted, defaulted, stored and returned as written', () => {
    const stored = store(`
apiVersion: v1
kind: Pod
metadata: { name: web, namespace: shop, labels: { app: web } }
spec:
  containers:
    - name: app
      image: "registry.local/web:1.2"
      resources: { limits: { cpu: 500m, memory: 64Mi } }
      volumeMounts:
        - { name: all-in-one, mountPath: /projected, readOnly: true }
        - { name: podinfo, mountPath: /etc/podinfo }
  volumes:
    - name: all-in-one
      projected:
        defaultMode: 0440
        sources:
          - secret:
              name: web-creds
              items: [{ key: token, path: creds/token, mode: 0400 }]
              optional: false
          - configMap: { name: web-conf, items: [{ key: app.conf, path: conf/app.conf }] }
          - downwardAPI:
              items:
                - path: labels
                  fieldRef: { fieldPath: metadata.labels }
                - path: cpu_limit
                  resourceFieldRef: { containerName: app, resource: limits.cpu, divisor: 1m }
          - serviceAccountToken: { audience: vault, expirationSeconds: 7200, path: vault-token }
    - name: podinfo
      downwardAPI:
        items:
          - path: name
            fieldRef: { apiVersion: v1, fieldPath: metadata.name }
          - path: team
            fieldRef: { fieldPath: "metadata.annotations['team']" }
            mode: 0444
`) as Pod;
    const [projected, downward] = stored.spec.volumes!;
    assert.equal(projected!.projected!.defaultMode, 0o440);
    assert.equal(downward!.downwardAPI!.defaultMode, 0o644, 'defaulted as Kubernetes does');
    assert.equal(downward!.downwardAPI!.items![1]!.fieldRef!.apiVersion, 'v1', 'defaulted');
    const token = defaultObject(
      parseObject(
        pod({ volumes: [{ name: 't', projected: { sources: [{ serviceAccountToken: { path: 't' } }] } }] }),
      ),
    ) as Pod;
    assert.equal(
      token.spec.volumes![0]!.projected!.sources![0]!.serviceAccountToken!.expirationSeconds,
      3600,
    );
  });

  const unserved: [string, Record<string, unknown>, RegExp][] = [
    [
      'persistentVolumeClaim',
      { claimName: 'data' },
      /persistentVolumeClaim volumes need the PersistentVolumeClaim kind, which skiff does not serve/,
    ],
    [
      'ephemeral',
      {
        volumeClaimTemplate: {
          spec: { accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '1Gi' } } },
        },
      },
      /ephemeral volumes need the PersistentVolumeClaim kind/,
    ],
    [
      'csi',
      { driver: 'inline.storage.example.com', volumeAttributes: { size: '1Gi' } },
      /csi volumes need a CSI driver/,
    ],
    ['nfs', { server: 'nfs.example.com', path: '/exports' }, /nfs volumes need an NFS client/],
    [
      'image',
      { reference: 'registry.local/data:1', pullPolicy: 'IfNotPresent' },
      /image volumes need the ImageVolume feature/,
    ],
    ['gitRepo', { repository: 'https://example.com/repo.git' }, /gitRepo volume plugin/],
    [
      'iscsi',
      { targetPortal: '10.0.0.1:3260', iqn: 'iqn.2001-04.com.example:storage', lun: 0 },
      /iSCSI initiator/,
    ],
    ['awsElasticBlockStore', { volumeID: 'vol-1', fsType: 'ext4' }, /awsElasticBlockStore volume plugin/],
    [
      'azureDisk',
      { diskName: 'd', diskURI: 'https://x/d.vhd', cachingMode: 'ReadOnly', kind: 'Shared' },
      /azureDisk volume plugin/,
    ],
    ['scaleIO', { gateway: 'https://g', system: 's', secretRef: { name: 's' } }, /scaleIO volume plugin/],
    ['fc', { targetWWNs: ['500a0982991b8dc5'], lun: 2 }, /Fibre Channel/],
    ['cephfs', { monitors: ['10.0.0.1:6789'], user: 'admin' }, /cephfs volume plugin/],
  ];
  for (const [source, shape, message] of unserved) {
    test(`a ${source} volume reads and is refused naming what it needs`, () =>
      refused(
        pod(
          { volumes: [{ name: 'data', [source]: shape }] },
          { volumeMounts: [{ name: 'data', mountPath: '/data' }] },
        ),
        `spec.volumes[0].${source}`,
        message,
      ));
  }

  const cases: [string, Record<string, unknown>, string, RegExp][] = [
    [
      'two sources in one projection',
      { projected: { sources: [{ configMap: { name: 'a' }, secret: { name: 'b' } }] } },
      'spec.volumes[0].projected.sources[0]',
      /only one source, found secret and configMap/,
    ],
    [
      'a projected path taken twice',
      {
        projected: {
          sources: [
            { configMap: { name: 'a', items: [{ key: 'k', path: 'f' }] } },
            { secret: { name: 'b', items: [{ key: 'k', path: 'f' }] } },
          ],
        },
      },
      'spec.volumes[0].projected.sources[1].secret.items[0].path',
      /"f" is also projected/,
    ],
    [
      'a token that expires in a minute',
      { projected: { sources: [{ serviceAccountToken: { path: 't', expirationSeconds: 60 } }] } },
      'spec.volumes[0].projected.sources[0].serviceAccountToken.expirationSeconds',
      /between 600 and 4294967296/,
    ],
    [
      'a token path that climbs out',
      { projected: { sources: [{ serviceAccountToken: { path: '../t' } }] } },
      'spec.volumes[0].projected.sources[0].serviceAccountToken.path',
      /'\.\.'/,
    ],
    [
      'a cluster trust bundle',
      { projected: { sources: [{ clusterTrustBundle: { signerName: 'example.com/ca', path: 'ca.pem' } }] } },
      'spec.volumes[0].projected.sources[0].clusterTrustBundle',
      /ClusterTrustBundle kind \(certificates.k8s.io\), which skiff does not serve/,
    ],
    [
      'a projected configMap without a name',
      { projected: { sources: [{ configMap: {} }] } },
      'spec.volumes[0].projected.sources[0].configMap.name',
      /required/,
    ],
    [
      'a defaultMode above 0777',
      { projected: { defaultMode: 0o1000, sources: [] } },
      'spec.volumes[0].projected.defaultMode',
      /between 0 and 511/,
    ],
    [
      'a downward API file with both refs',
      {
        downwardAPI: {
          items: [
            {
              path: 'x',
              fieldRef: { fieldPath: 'metadata.name' },
              resourceFieldRef: { containerName: 'app', resource: 'limits.cpu' },
            },
          ],
        },
      },
      'spec.volumes[0].downwardAPI.items[0]',
      /only one of fieldRef and resourceFieldRef/,
    ],
    [
      'a downward API file with neither',
      { downwardAPI: { items: [{ path: 'x' }] } },
      'spec.volumes[0].downwardAPI.items[0]',
      /one of fieldRef and resourceFieldRef/,
    ],
    [
      'a downward API field a volume cannot hold',
      { downwardAPI: { items: [{ path: 'x', fieldRef: { fieldPath: 'status.podIP' } }] } },
      'spec.volumes[0].downwardAPI.items[0].fieldRef.fieldPath',
      /unsupported value "status.podIP"/,
    ],
    [
      'a resource file without its container',
      { downwardAPI: { items: [{ path: 'x', resourceFieldRef: { resource: 'limits.memory' } }] } },
      'spec.volumes[0].downwardAPI.items[0].resourceFieldRef.containerName',
      /required/,
    ],
    [
      'a downward API path starting with ..',
      { downwardAPI: { items: [{ path: '..data', fieldRef: { fieldPath: 'metadata.name' } }] } },
      'spec.volumes[0].downwardAPI.items[0].path',
      /must not start with '\.\.'/,
    ],
    [
      'two volume sources',
      { emptyDir: {}, nfs: { server: 'a', path: '/b' } },
      'spec.volumes[0]',
      /only one volume source, found emptyDir and nfs/,
    ],
  ];
  for (const [name, source, field, message] of cases) {
    test(`${name} → ${field}`, () => refused(pod({ volumes: [{ name: 'v', ...source }] }), field, message));
  }
});

describe('Job: podFailurePolicy, backoffLimitPerIndex, maxFailedIndexes, successPolicy, podReplacementPolicy, managedBy', () => {
  test('are accepted, defaulted as Kubernetes does, stored and returned as written', () => {
    const stored = store(
      job({
        completions: 10,
        parallelism: 3,
        completionMode: 'Indexed',
        backoffLimitPerIndex: 1,
        maxFailedIndexes: 5,
        podFailurePolicy: {
          rules: [
            { action: 'FailJob', onExitCodes: { containerName: 'work', operator: 'In', values: [42] } },
            { action: 'FailIndex', onExitCodes: { operator: 'NotIn', values: [0, 1, 2] } },
            { action: 'Ignore', onPodConditions: [{ type: 'DisruptionTarget' }] },
            { action: 'Count', onPodConditions: [{ type: 'ConfigIssue', status: 'False' }] },
          ],
        },
        successPolicy: { rules: [{ succeededIndexes: '0-2,5', succeededCount: 3 }, { succeededCount: 8 }] },
        managedBy: 'kueue.x-k8s.io/multikueue',
      }),
    ) as Job;
    assert.equal(
      stored.spec.podReplacementPolicy,
      'Failed',
      'with a podFailurePolicy, pods are replaced once failed',
    );
    assert.equal(stored.spec.backoffLimit, 2 ** 31 - 1, 'per-index backoff leaves the total open');
    assert.equal(stored.spec.podFailurePolicy!.rules![2]!.onPodConditions![0]!.status, 'True', 'defaulted');
    const plain = store(job({ podReplacementPolicy: 'TerminatingOrFailed' })) as Job;
    assert.equal(plain.spec.backoffLimit, 6);
    assert.equal((store(job({})) as Job).spec.podReplacementPolicy, 'TerminatingOrFailed');
  });

  const indexed = { completions: 4, completionMode: 'Indexed' };
  const cases: [string, Record<string, unknown>, Record<string, unknown>, string, RegExp][] = [
    [
      'a podFailurePolicy with restartPolicy OnFailure',
      { podFailurePolicy: { rules: [] } },
      { restartPolicy: 'OnFailure' },
      'spec.template.spec.restartPolicy',
      /must be Never when podFailurePolicy is set/,
    ],
    [
      'an unknown action',
      { podFailurePolicy: { rules: [{ action: 'Retry', onPodConditions: [{ type: 'X' }] }] } },
      {},
      'spec.podFailurePolicy.rules[0].action',
      /FailJob, FailIndex, Ignore, Count/,
    ],
    [
      'FailIndex without backoffLimitPerIndex',
      {
        podFailurePolicy: { rules: [{ action: 'FailIndex', onExitCodes: { operator: 'In', values: [1] } }] },
      },
      {},
      'spec.podFailurePolicy.rules[0].action',
      /backoffLimitPerIndex/,
    ],
    [
      'both matchers in one rule',
      {
        podFailurePolicy: {
          rules: [
            {
              action: 'Ignore',
              onExitCodes: { operator: 'In', values: [1] },
              onPodConditions: [{ type: 'X' }],
            },
          ],
        },
      },
      {},
      'spec.podFailurePolicy.rules[0]',
      /only one of onExitCodes and onPodConditions/,
    ],
    [
      'no matcher',
      { podFailurePolicy: { rules: [{ action: 'Ignore' }] } },
      {},
      'spec.podFailurePolicy.rules[0]',
      /one of onExitCodes and onPodConditions/,
    ],
    [
      'exit code 0 with In',
      {
        podFailurePolicy: { rules: [{ action: 'FailJob', onExitCodes: { operator: 'In', values: [0, 1] } }] },
      },
      {},
      'spec.podFailurePolicy.rules[0].onExitCodes.values[0]',
      /must not be 0 for the In operator/,
    ],
    [
      'exit codes out of order',
      {
        podFailurePolicy: {
          rules: [{ action: 'FailJob', onExitCodes: { operator: 'NotIn', values: [3, 1] } }],
        },
      },
      {},
      'spec.podFailurePolicy.rules[0].onExitCodes.values[1]',
      /ascending/,
    ],
    [
      'an unknown container',
      {
        podFailurePolicy: {
          rules: [{ action: 'FailJob', onExitCodes: { containerName: 'nope', operator: 'In', values: [1] } }],
        },
      },
      {},
      'spec.podFailurePolicy.rules[0].onExitCodes.containerName',
      /not one of the pod template's containers/,
    ],
    [
      'a condition status that is not one',
      {
        podFailurePolicy: { rules: [{ action: 'Ignore', onPodConditions: [{ type: 'X', status: 'Yes' }] }] },
      },
      {},
      'spec.podFailurePolicy.rules[0].onPodConditions[0].status',
      /True, False, Unknown/,
    ],
    [
      'backoffLimitPerIndex without Indexed',
      { backoffLimitPerIndex: 1 },
      {},
      'spec.backoffLimitPerIndex',
      /completionMode is Indexed/,
    ],
    [
      'maxFailedIndexes without backoffLimitPerIndex',
      { ...indexed, maxFailedIndexes: 1 },
      {},
      'spec.maxFailedIndexes',
      /backoffLimitPerIndex is set/,
    ],
    [
      'maxFailedIndexes above completions',
      { ...indexed, backoffLimitPerIndex: 1, maxFailedIndexes: 5 },
      {},
      'spec.maxFailedIndexes',
      /between 0 and 4/,
    ],
    [
      'a successPolicy without Indexed',
      { successPolicy: { rules: [{ succeededCount: 1 }] } },
      {},
      'spec.successPolicy',
      /completionMode is Indexed/,
    ],
    [
      'a successPolicy rule with nothing',
      { ...indexed, successPolicy: { rules: [{}] } },
      {},
      'spec.successPolicy.rules[0]',
      /succeededIndexes, succeededCount or both/,
    ],
    [
      'succeededIndexes beyond completions',
      { ...indexed, successPolicy: { rules: [{ succeededIndexes: '2-4' }] } },
      {},
      'spec.successPolicy.rules[0].succeededIndexes',
      /out of range/,
    ],
    [
      'succeededIndexes out of order',
      { ...indexed, successPolicy: { rules: [{ succeededIndexes: '2,1' }] } },
      {},
      'spec.successPolicy.rules[0].succeededIndexes',
      /ascending/,
    ],
    [
      'succeededCount above the listed indexes',
      { ...indexed, successPolicy: { rules: [{ succeededIndexes: '0-1', succeededCount: 3 }] } },
      {},
      'spec.successPolicy.rules[0].succeededCount',
      /at most 2/,
    ],
    [
      'an unknown podReplacementPolicy',
      { podReplacementPolicy: 'Never' },
      {},
      'spec.podReplacementPolicy',
      /TerminatingOrFailed, Failed/,
    ],
    [
      'TerminatingOrFailed with a podFailurePolicy',
      { podReplacementPolicy: 'TerminatingOrFailed', podFailurePolicy: { rules: [] } },
      {},
      'spec.podReplacementPolicy',
      /must be Failed when podFailurePolicy is set/,
    ],
    [
      'managedBy without a domain',
      { managedBy: 'my-controller' },
      {},
      'spec.managedBy',
      /domain-prefixed path/,
    ],
    [
      'managedBy too long',
      { managedBy: `example.com/${'a'.repeat(60)}` },
      {},
      'spec.managedBy',
      /no more than 63/,
    ],
  ];
  for (const [name, spec, podSpec, field, message] of cases) {
    test(`${name} → ${field}`, () => refused(job(spec, podSpec), field, message));
  }

  test('podFailurePolicy, successPolicy, backoffLimitPerIndex and managedBy are fixed once created', () => {
    const old = defaultObject(
      parseObject(
        job({
          ...indexed,
          backoffLimitPerIndex: 1,
          podFailurePolicy: {
            rules: [{ action: 'Ignore', onPodConditions: [{ type: 'DisruptionTarget' }] }],
          },
          managedBy: 'example.com/a',
        }),
      ),
    ) as Job;
    const changed = (mutate: (j: Job) => void): Job => {
      const next = structuredClone(old);
      mutate(next);
      return next;
    };
    for (const [mutate, field] of [
      [
        (j: Job) => (j.spec.podFailurePolicy!.rules![0]!.action = 'Count'),
        'spec.podFailurePolicy.rules[0].action',
      ],
      [(j: Job) => (j.spec.backoffLimitPerIndex = 2), 'spec.backoffLimitPerIndex'],
      [(j: Job) => (j.spec.managedBy = 'example.com/b'), 'spec.managedBy'],
    ] as const) {
      assert.throws(
        () => validateObject(changed(mutate), old),
        (err: unknown) =>
          err instanceof InvalidArgumentError && err.field === field && /immutable/.test(err.message),
      );
    }
    validateObject(
      changed((j) => (j.spec.maxFailedIndexes = 1)),
      old,
    );
  });
});

describe('Service: loadBalancerSourceRanges, sessionAffinityConfig, allocateLoadBalancerNodePorts, loadBalancerClass, trafficDistribution', () => {
  test('are accepted, defaulted as Kubernetes does, stored and returned as written', () => {
    store(
      service({
        type: 'LoadBalancer',
        loadBalancerSourceRanges: ['10.0.0.0/8', '192.168.1.0/24', 'fd00::/64'],
        allocateLoadBalancerNodePorts: false,
        loadBalancerClass: 'example.com/internal-vip',
        externalTrafficPolicy: 'Local',
        healthCheckNodePort: 32000,
        sessionAffinity: 'ClientIP',
        sessionAffinityConfig: { clientIP: { timeoutSeconds: 600 } },
        trafficDistribution: 'PreferClose',
      }),
    );
    const defaulted = store(service({ type: 'LoadBalancer', sessionAffinity: 'ClientIP' })) as Service;
    assert.equal(defaulted.spec.allocateLoadBalancerNodePorts, true);
    assert.deepEqual(defaulted.spec.sessionAffinityConfig, { clientIP: { timeoutSeconds: 10800 } });
    const clusterIp = store(service({})) as Service;
    assert.equal(clusterIp.spec.allocateLoadBalancerNodePorts, undefined, 'only LoadBalancers get it');
  });

  const cases: [string, Record<string, unknown>, string, RegExp][] = [
    [
      'source ranges on a ClusterIP service',
      { loadBalancerSourceRanges: ['10.0.0.0/8'] },
      'spec.loadBalancerSourceRanges',
      /only when type is LoadBalancer/,
    ],
    [
      'a source range that is not a CIDR',
      { type: 'LoadBalancer', loadBalancerSourceRanges: ['10.0.0.0'] },
      'spec.loadBalancerSourceRanges[0]',
      /CIDR/,
    ],
    [
      'allocateLoadBalancerNodePorts on a NodePort service',
      { type: 'NodePort', allocateLoadBalancerNodePorts: true },
      'spec.allocateLoadBalancerNodePorts',
      /only when type is LoadBalancer/,
    ],
    [
      'a loadBalancerClass on a ClusterIP service',
      { loadBalancerClass: 'example.com/lb' },
      'spec.loadBalancerClass',
      /only when type is LoadBalancer/,
    ],
    [
      'a loadBalancerClass that is not a qualified name',
      { type: 'LoadBalancer', loadBalancerClass: 'a/b/c' },
      'spec.loadBalancerClass',
      /qualified name/,
    ],
    [
      'sessionAffinityConfig without ClientIP',
      { sessionAffinityConfig: { clientIP: { timeoutSeconds: 5 } } },
      'spec.sessionAffinityConfig',
      /only when sessionAffinity is ClientIP/,
    ],
    [
      'a ClientIP timeout of two days',
      { sessionAffinity: 'ClientIP', sessionAffinityConfig: { clientIP: { timeoutSeconds: 172800 } } },
      'spec.sessionAffinityConfig.clientIP.timeoutSeconds',
      /between 1 and 86400/,
    ],
    [
      'a ClientIP config without a timeout',
      { sessionAffinity: 'ClientIP', sessionAffinityConfig: {} },
      'spec.sessionAffinityConfig.clientIP.timeoutSeconds',
      /required when sessionAffinity is ClientIP/,
    ],
    [
      'healthCheckNodePort without Local',
      { type: 'LoadBalancer', healthCheckNodePort: 32000 },
      'spec.healthCheckNodePort',
      /externalTrafficPolicy is Local/,
    ],
    [
      'an unknown trafficDistribution',
      { trafficDistribution: 'PreferSameZone' },
      'spec.trafficDistribution',
      /PreferClose/,
    ],
  ];
  for (const [name, spec, field, message] of cases) {
    test(`${name} → ${field}`, () => refused(service(spec), field, message));
  }

  test('a LoadBalancer keeps its loadBalancerClass', () => {
    const old = defaultObject(
      parseObject(service({ type: 'LoadBalancer', loadBalancerClass: 'example.com/a' })),
    ) as Service;
    const next = structuredClone(old);
    next.spec.loadBalancerClass = 'example.com/b';
    assert.throws(
      () => validateObject(next, old),
      (err: unknown) =>
        err instanceof InvalidArgumentError &&
        err.field === 'spec.loadBalancerClass' &&
        /immutable/.test(err.message),
    );
  });
});

describe('Pod updates of the new fields', () => {
  const stored = (): Pod =>
    defaultObject(
      parseObject(
        pod({
          schedulingGates: [{ name: 'a' }, { name: 'b' }],
          dnsConfig: { options: [{ name: 'ndots', value: '1' }] },
        }),
      ),
    ) as Pod;
  test('scheduling gates may be removed, not added; the rest stays fixed', () => {
    const old = stored();
    const removed = structuredClone(old);
    removed.spec.schedulingGates = [{ name: 'b' }];
    validateObject(removed, old);
    const added = structuredClone(old);
    added.spec.schedulingGates = [...added.spec.schedulingGates!, { name: 'c' }];
    assert.throws(
      () => validateObject(added, old),
      (err: unknown) => err instanceof InvalidArgumentError && err.field === 'spec.schedulingGates[2].name',
    );
    const dns = structuredClone(old);
    dns.spec.dnsConfig!.options![0]!.value = '5';
    assert.throws(
      () => validateObject(dns, old),
      (err: unknown) =>
        err instanceof InvalidArgumentError &&
        err.field === 'spec.dnsConfig.options[0].value' &&
        /immutable/.test(err.message),
    );
  });
  test('a pod stored before serviceAccountName was defaulted may be updated (it is given "default")', () => {
    const old = stored();
    delete old.spec.serviceAccountName;
    const next = defaultObject(structuredClone(old));
    next.metadata.labels = { app: 'web', release: 'b' };
    validateObject(next, old);
    assert.equal(next.spec.serviceAccountName, 'default');
  });
});

describe('ServiceAccount', () => {
  test('is stored and returned as written, and printed with its secrets', async () => {
    const account = store(`
apiVersion: v1
kind: ServiceAccount
metadata: { name: builder, namespace: shop }
secrets: [{ name: builder-token }]
imagePullSecrets: [{ name: registry }]
automountServiceAccountToken: false
`);
    const { kindInfoOf } = await import('../../../proto/kinds.js');
    const info = kindInfoOf('ServiceAccount');
    assert.deepEqual([info.plural, info.shortNames, info.namespaced], ['serviceaccounts', ['sa'], true]);
    assert.deepEqual(info.printer.columns, ['SECRETS']);
    assert.deepEqual(info.printer.cells(account as never, Date.now()), ['1']);
    refused(
      { ...account, metadata: { name: 'Builder', namespace: 'shop' } },
      'metadata.name',
      /DNS-1123 subdomain/,
    );
  });
});
