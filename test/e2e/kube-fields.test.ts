/**
 * The Kubernetes 1.32 fields of PodSpec, Container, SecurityContext, PodSecurityContext, JobSpec
 * and ServiceSpec that skiff did not read before (issue 9, item 15), end to end: one realistic
 * manifest that sets all of them is applied through the built `skiff` against a real cluster and
 * read back with `skiff get -o json` unchanged; re-applying it changes nothing; and what skiff
 * cannot serve (a RuntimeClass and its overhead, a PersistentVolumeClaim, a ServiceAccount that does
 * not exist, ephemeral containers on create) is refused naming what is missing.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { startTestCluster, type RunResult, type TestCluster } from './cli-harness.js';

const NAMESPACE = 'kube-fields';

const ACCOUNT = `apiVersion: v1
kind: Namespace
metadata:
  name: ${NAMESPACE}
---
apiVersion: v1
kind: ServiceAccount
metadata:
  name: builder
  namespace: ${NAMESPACE}
secrets:
  - name: builder-token
imagePullSecrets:
  - name: registry-creds
automountServiceAccountToken: false
`;

/**
 * Every field the issue names, as a user writes them, with the values the server would default
 * written out too, so what comes back must equal what was sent.
 */
const WORKLOADS = `apiVersion: v1
kind: Pod
metadata:
  name: web-0
  namespace: ${NAMESPACE}
  labels:
    app: web
    pod-template-hash: 5d8f7
spec:
  serviceAccountName: builder
  serviceAccount: builder
  automountServiceAccountToken: false
  enableServiceLinks: false
  restartPolicy: Always
  terminationGracePeriodSeconds: 45
  activeDeadlineSeconds: 86400
  schedulerName: default-scheduler
  preemptionPolicy: PreemptLowerPriority
  priority: 0
  imagePullSecrets:
    - name: registry-creds
  tolerations:
    - {key: node.kubernetes.io/not-ready, operator: Exists, effect: NoExecute, tolerationSeconds: 300}
    - {key: node.kubernetes.io/unreachable, operator: Exists, effect: NoExecute, tolerationSeconds: 300}
  dnsPolicy: None
  dnsConfig:
    nameservers: [10.96.0.10]
    searches: [${NAMESPACE}.svc.cluster.local, svc.cluster.local]
    options:
      - name: ndots
        value: "2"
      - name: edns0
  hostAliases:
    - ip: 10.1.2.3
      hostnames: [db.internal, cache.internal]
  hostname: web-0
  subdomain: web
  setHostnameAsFQDN: true
  shareProcessNamespace: true
  readinessGates:
    - conditionType: example.com/load-balancer-ready
  schedulingGates:
    - name: example.com/quota-check
  topologySpreadConstraints:
    - maxSkew: 1
      topologyKey: topology.kubernetes.io/zone
      whenUnsatisfiable: DoNotSchedule
      labelSelector:
        matchLabels: { app: web }
      minDomains: 2
      nodeAffinityPolicy: Honor
      nodeTaintsPolicy: Ignore
      matchLabelKeys: [pod-template-hash]
  affinity:
    podAntiAffinity:
      preferredDuringSchedulingIgnoredDuringExecution:
        - weight: 50
          podAffinityTerm:
            topologyKey: kubernetes.io/hostname
            labelSelector:
              matchLabels: { app: web }
            matchLabelKeys: [pod-template-hash]
  securityContext:
    runAsUser: 1000
    runAsGroup: 3000
    runAsNonRoot: true
    fsGroup: 2000
    fsGroupChangePolicy: OnRootMismatch
    supplementalGroups: [4000]
    supplementalGroupsPolicy: Merge
    seccompProfile:
      type: RuntimeDefault
    appArmorProfile:
      type: RuntimeDefault
    seLinuxOptions:
      level: "s0:c123,c456"
    windowsOptions:
      gmsaCredentialSpecName: web-gmsa
      runAsUserName: "WEB\\\\svc-web"
    sysctls:
      - name: net.ipv4.ip_local_port_range
        value: "1024 65000"
  initContainers:
    - name: log-shipper
      image: registry.local/shipper:2.4
      imagePullPolicy: IfNotPresent
      restartPolicy: Always
      startupProbe:
        grpc:
          port: 9090
          service: shipper
        timeoutSeconds: 1
        periodSeconds: 10
        successThreshold: 1
        failureThreshold: 30
      volumeMounts:
        - name: logs
          mountPath: /var/log/web
          readOnly: true
      resources:
        requests: { cpu: 50m, memory: 32Mi }
        limits: { cpu: 50m, memory: 32Mi }
  containers:
    - name: web
      image: registry.local/web:1.2
      imagePullPolicy: IfNotPresent
      ports:
        - name: http
          containerPort: 8080
          protocol: TCP
      env:
        - name: POD_NAME
          valueFrom:
            fieldRef:
              apiVersion: v1
              fieldPath: metadata.name
      resources:
        requests: { cpu: 250m, memory: 64Mi }
        limits: { cpu: 500m, memory: 128Mi }
      resizePolicy:
        - resourceName: cpu
          restartPolicy: NotRequired
        - resourceName: memory
          restartPolicy: RestartContainer
      livenessProbe:
        grpc:
          port: 8081
          service: ""
        timeoutSeconds: 1
        periodSeconds: 10
        successThreshold: 1
        failureThreshold: 3
      readinessProbe:
        httpGet:
          path: /ready
          port: http
          scheme: HTTP
        timeoutSeconds: 1
        periodSeconds: 5
        successThreshold: 1
        failureThreshold: 3
      volumeMounts:
        - name: logs
          mountPath: /var/log/web
          subPathExpr: $(POD_NAME)
        - name: host-run
          mountPath: /host/run
          readOnly: true
          mountPropagation: HostToContainer
        - name: all-in-one
          mountPath: /etc/web
          readOnly: true
          recursiveReadOnly: IfPossible
        - name: podinfo
          mountPath: /etc/podinfo
          readOnly: true
      securityContext:
        allowPrivilegeEscalation: false
        readOnlyRootFilesystem: true
        capabilities:
          drop: [ALL]
        seccompProfile:
          type: Localhost
          localhostProfile: profiles/web.json
        appArmorProfile:
          type: Localhost
          localhostProfile: k8s-web
        seLinuxOptions:
          type: container_t
        procMount: Default
        windowsOptions:
          runAsUserName: ContainerUser
  volumes:
    - name: logs
      emptyDir: {}
    - name: host-run
      hostPath:
        path: /run/web
        type: DirectoryOrCreate
    - name: all-in-one
      projected:
        defaultMode: 0440
        sources:
          - secret:
              name: web-tls
              items:
                - key: tls.crt
                  path: tls/tls.crt
                  mode: 0400
              optional: true
          - configMap:
              name: web-conf
              items:
                - key: app.conf
                  path: app.conf
          - downwardAPI:
              items:
                - path: labels
                  fieldRef:
                    apiVersion: v1
                    fieldPath: metadata.labels
          - serviceAccountToken:
              audience: vault
              expirationSeconds: 3600
              path: vault-token
    - name: podinfo
      downwardAPI:
        defaultMode: 0644
        items:
          - path: cpu-limit
            resourceFieldRef:
              containerName: web
              resource: limits.cpu
              divisor: 1m
          - path: team
            fieldRef:
              apiVersion: v1
              fieldPath: metadata.annotations['team']
            mode: 0444
---
apiVersion: batch/v1
kind: Job
metadata:
  name: shards
  namespace: ${NAMESPACE}
spec:
  completions: 6
  parallelism: 2
  completionMode: Indexed
  backoffLimit: 100
  backoffLimitPerIndex: 1
  maxFailedIndexes: 3
  podReplacementPolicy: Failed
  podFailurePolicy:
    rules:
      - action: FailJob
        onExitCodes:
          containerName: shard
          operator: In
          values: [42]
      - action: FailIndex
        onExitCodes:
          operator: In
          values: [3, 4]
      - action: Ignore
        onPodConditions:
          - type: DisruptionTarget
            status: "True"
  successPolicy:
    rules:
      - succeededIndexes: 0-2
        succeededCount: 2
  managedBy: kubernetes.io/job-controller
  manualSelector: true
  selector:
    matchLabels:
      app: shards
  suspend: true
  ttlSecondsAfterFinished: 600
  template:
    metadata:
      labels:
        app: shards
    spec:
      os:
        name: linux
      restartPolicy: Never
      dnsPolicy: ClusterFirst
      schedulerName: default-scheduler
      terminationGracePeriodSeconds: 30
      containers:
        - name: shard
          image: busybox:1.36
          imagePullPolicy: IfNotPresent
          command: [sh, -c, 'echo "index $JOB_COMPLETION_INDEX"']
---
apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: ${NAMESPACE}
spec:
  type: LoadBalancer
  clusterIP: 10.96.0.50
  clusterIPs: [10.96.0.50]
  selector:
    app: web
  ports:
    - name: http
      port: 80
      targetPort: http
      protocol: TCP
  sessionAffinity: ClientIP
  sessionAffinityConfig:
    clientIP:
      timeoutSeconds: 1800
  loadBalancerSourceRanges: [10.0.0.0/8, 192.168.0.0/16]
  allocateLoadBalancerNodePorts: false
  loadBalancerClass: example.com/internal-vip
  externalTrafficPolicy: Cluster
  internalTrafficPolicy: Cluster
  trafficDistribution: PreferClose
`;

function ok(result: RunResult, what: string): RunResult {
  assert.equal(
    result.code,
    0,
    `${what} failed (exit ${result.code}):\nstdout: ${result.stdout}\nstderr: ${result.stderr}`,
  );
  return result;
}

function refusedWith(result: RunResult, what: string, ...patterns: RegExp[]): void {
  assert.notEqual(result.code, 0, `${what} was accepted:\n${result.stdout}`);
  for (const pattern of patterns) assert.match(result.stderr, pattern, what);
  assert.doesNotMatch(result.stderr, /unknown field/, what);
}

/** The documents of a manifest as the CLI reads them (YAML 1.1, as kubectl: 0440 is octal). */
function documents(text: string): Record<string, Record<string, unknown>>[] {
  return parseAllDocuments(text, { version: '1.1' }).map(
    (doc) => doc.toJS() as Record<string, Record<string, unknown>>,
  );
}

describe('Kubernetes 1.32 pod, job and service fields through the CLI', { timeout: 240_000 }, () => {
  let cluster: TestCluster;
  let dir: string;
  const file = (name: string, text: string): string => {
    const path = join(dir, name);
    writeFileSync(path, text);
    return path;
  };

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'skiff-e2e-kube-fields-'));
    cluster = await startTestCluster('kube-fields');
  });

  after(async () => {
    await cluster?.dispose();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('a ServiceAccount is served (sa), listed with its secrets', async () => {
    const account = file('account.yaml', ACCOUNT);
    assert.equal(
      ok(await cluster.skiff(['apply', '-f', account]), 'apply account').stdout,
      `namespace/${NAMESPACE} created\nserviceaccount/builder created\n`,
    );
    const table = ok(await cluster.skiff(['get', 'sa', '-n', NAMESPACE]), 'get sa').stdout;
    assert.match(table, /^NAME\s+SECRETS\s+AGE\n/);
    assert.match(table, /^builder\s+1\s+\S+$/m);
    const json = JSON.parse(
      ok(
        await cluster.skiff(['get', 'serviceaccount', 'builder', '-n', NAMESPACE, '-o', 'json']),
        'get -o json',
      ).stdout,
    );
    const written = documents(ACCOUNT)[1]!;
    for (const key of ['secrets', 'imagePullSecrets', 'automountServiceAccountToken'])
      assert.deepEqual(json[key], written[key], key);
    assert.match(
      ok(await cluster.skiff(['api-resources']), 'api-resources').stdout,
      /^serviceaccounts\s+sa\s+v1\s+true\s+ServiceAccount$/m,
    );
  });

  test('one manifest with every field is applied, read back unchanged, and re-applied unchanged', async () => {
    const manifest = file('workloads.yaml', WORKLOADS);
    assert.equal(
      ok(await cluster.skiff(['apply', '-f', manifest]), 'apply').stdout,
      'pod/web-0 created\njob.batch/shards created\nservice/web created\n',
    );
    for (const written of documents(WORKLOADS)) {
      const kind = String(written['kind']);
      const name = String(written['metadata']!['name']);
      const json = JSON.parse(
        ok(
          await cluster.skiff(['get', kind.toLowerCase(), name, '-n', NAMESPACE, '-o', 'json']),
          `get ${kind}`,
        ).stdout,
      ) as Record<string, Record<string, unknown>>;
      assert.deepEqual(json['spec'], written['spec'], `${kind} ${name}: spec as written`);
      assert.deepEqual(
        json['metadata']!['labels'],
        written['metadata']!['labels'],
        `${kind} ${name}: labels`,
      );
    }
    assert.equal(
      ok(await cluster.skiff(['apply', '-f', manifest]), 'second apply').stdout,
      'pod/web-0 unchanged\njob.batch/shards unchanged\nservice/web unchanged\n',
    );
  });

  test('Services get a ClusterIP and node ports; a taken or foreign ClusterIP or node port is refused, naming the field', async () => {
    const service = (name: string, spec: string) =>
      `apiVersion: v1\nkind: Service\nmetadata: {name: ${name}, namespace: ${NAMESPACE}}\nspec:\n  selector: {app: ${name}}\n${spec}`;
    ok(
      await cluster.skiff(['apply', '-f', '-'], {
        input: service('front', '  type: NodePort\n  ports: [{port: 80, targetPort: 8080}]\n'),
      }),
      'apply front',
    );
    const front = JSON.parse(
      ok(await cluster.skiff(['get', 'svc', 'front', '-n', NAMESPACE, '-o', 'json']), 'get front').stdout,
    ) as { spec: { clusterIP: string; ports: { nodePort: number }[] } };
    assert.match(front.spec.clusterIP, /^10\.(9[6-9]|10[0-9]|11[01])\.\d+\.\d+$/, 'from 10.96.0.0/12');
    const nodePort = front.spec.ports[0]!.nodePort;
    assert.ok(nodePort >= 30000 && nodePort <= 32767, String(nodePort));
    const listed = ok(await cluster.skiff(['get', 'svc', 'front', '-n', NAMESPACE]), 'get svc').stdout;
    assert.match(
      listed,
      new RegExp(
        `^front\\s+NodePort\\s+${front.spec.clusterIP.replaceAll('.', '\\.')}\\s+<none>\\s+80:${nodePort}/TCP\\s`,
        'm',
      ),
    );
    ok(
      await cluster.skiff(['apply', '-f', '-'], {
        input: service('front', '  type: NodePort\n  ports: [{port: 80, targetPort: 8081}]\n'),
      }),
      're-apply front',
    );
    const again = JSON.parse(
      ok(await cluster.skiff(['get', 'svc', 'front', '-n', NAMESPACE, '-o', 'json']), 'get front').stdout,
    ) as typeof front;
    assert.equal(again.spec.clusterIP, front.spec.clusterIP, 'a re-apply keeps the ClusterIP');
    assert.equal(again.spec.ports[0]!.nodePort, nodePort, 'and the node port');
    refusedWith(
      await cluster.skiff(['apply', '-f', '-'], {
        input: service('copy', `  clusterIP: ${front.spec.clusterIP}\n  ports: [{port: 80}]\n`),
      }),
      'a taken ClusterIP',
      /spec\.clusterIP/,
      new RegExp(`provided IP is already allocated \\(to Service ${NAMESPACE}/front\\)`),
    );
    refusedWith(
      await cluster.skiff(['apply', '-f', '-'], {
        input: service('elsewhere', '  clusterIP: 192.168.1.1\n  ports: [{port: 80}]\n'),
      }),
      'a ClusterIP outside the range',
      /spec\.clusterIP/,
      /The range of valid IPs is 10\.96\.0\.0\/12/,
    );
    refusedWith(
      await cluster.skiff(['apply', '-f', '-'], {
        input: service('port-copy', `  type: NodePort\n  ports: [{port: 80, nodePort: ${nodePort}}]\n`),
      }),
      'a taken node port',
      /spec\.ports\[0\]\.nodePort/,
      /provided port is already allocated/,
    );
    const names = ok(await cluster.skiff(['get', 'svc', '-n', NAMESPACE, '-o', 'name']), 'get svc').stdout;
    assert.doesNotMatch(names, /copy|elsewhere/, 'nothing refused was stored');
    ok(await cluster.skiff(['delete', 'svc', 'front', '-n', NAMESPACE]), 'delete front');
    ok(
      await cluster.skiff(['apply', '-f', '-'], {
        input: service(
          'heir',
          `  type: NodePort\n  clusterIP: ${front.spec.clusterIP}\n  ports: [{port: 80, nodePort: ${nodePort}}]\n`,
        ),
      }),
      'what front held is free once it is deleted',
    );
  });

  test('a pod names the ServiceAccount it runs as, or runs as default', async () => {
    const pod = (name: string, account?: string): string => `apiVersion: v1
kind: Pod
metadata: { name: ${name}, namespace: ${NAMESPACE} }
spec:
  ${account === undefined ? '' : `serviceAccountName: ${account}`}
  containers: [{ name: c, image: "busybox:1.36" }]
`;
    ok(await cluster.skiff(['apply', '-f', '-'], { input: pod('plain') }), 'apply plain');
    const plain = JSON.parse(
      ok(await cluster.skiff(['get', 'pod', 'plain', '-n', NAMESPACE, '-o', 'json']), 'get plain').stdout,
    );
    assert.equal(plain.spec.serviceAccountName, 'default');
    ok(await cluster.skiff(['apply', '-f', '-'], { input: pod('built', 'builder') }), 'apply built');
    const built = JSON.parse(
      ok(await cluster.skiff(['get', 'pod', 'built', '-n', NAMESPACE, '-o', 'json']), 'get built').stdout,
    );
    assert.deepEqual(built.spec.imagePullSecrets, [{ name: 'registry-creds' }], "the account's pull secrets");
    refusedWith(
      await cluster.skiff(['apply', '-f', '-'], { input: pod('ghostly', 'ghost') }),
      'a pod naming a missing ServiceAccount',
      /ServiceAccount "ghost" not found in namespace "kube-fields"/,
    );
  });

  test('what skiff cannot serve is refused naming what is missing', async () => {
    const pod = (spec: string): string => `apiVersion: v1
kind: Pod
metadata: { name: refused, namespace: ${NAMESPACE} }
spec:
  containers: [{ name: c, image: "busybox:1.36", volumeMounts: [{ name: data, mountPath: /data }] }]
${spec}`;
    refusedWith(
      await cluster.skiff(['apply', '-f', '-'], {
        input: pod('  runtimeClassName: gvisor\n  volumes: [{ name: data, emptyDir: {} }]\n'),
      }),
      'runtimeClassName',
      /spec\.runtimeClassName/,
      /RuntimeClass "gvisor" does not exist/,
    );
    // overhead comes from a RuntimeClass; ephemeral containers join a running pod (a subresource)
    refusedWith(
      await cluster.skiff(['apply', '-f', '-'], {
        input: pod('  overhead: { cpu: 100m }\n  volumes: [{ name: data, emptyDir: {} }]\n'),
      }),
      'overhead',
      /spec\.overhead/,
      /may only be set from a RuntimeClass/,
    );
    refusedWith(
      await cluster.skiff(['apply', '-f', '-'], {
        input: pod(
          '  ephemeralContainers: [{ name: debugger, image: "busybox:1.36", targetContainerName: c }]\n  volumes: [{ name: data, emptyDir: {} }]\n',
        ),
      }),
      'ephemeralContainers',
      /spec\.ephemeralContainers/,
      /cannot be set on create/,
    );
    for (const [source, needs] of [
      [
        'persistentVolumeClaim: { claimName: data }',
        /persistentVolumeClaim volumes need the PersistentVolumeClaim kind, which skiff does not serve/,
      ],
      ['csi: { driver: inline.example.com }', /csi volumes need a CSI driver/],
      ['nfs: { server: nfs.example.com, path: /exports }', /nfs volumes need an NFS client/],
    ] as const) {
      refusedWith(
        await cluster.skiff(['apply', '-f', '-'], { input: pod(`  volumes: [{ name: data, ${source} }]\n`) }),
        source,
        /spec\.volumes\[0\]/,
        needs,
      );
    }
    assert.notEqual(
      (await cluster.skiff(['get', 'pod', 'refused', '-n', NAMESPACE])).code,
      0,
      'nothing was stored',
    );
  });
});
