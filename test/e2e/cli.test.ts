/**
 * The `skiff` CLI end to end, through the built binary, against a real cluster (`skiff up
 * --detach`: etcd, nats-server, control plane) with an isolated $SKIFF_CONFIG.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { pino } from 'pino';
import { readConfigFile } from '../../cli/config.js';
import { obtainNodeCredentials } from '../../node-agent/agent/node-credentials.js';
import { trustBundleHash } from '../../proto/support/trust-bundle.js';
import { skiffArgv, startTestCluster, type RunResult, type TestCluster } from './cli-harness.js';

const LAST_APPLIED = 'kubectl.kubernetes.io/last-applied-configuration';

function appManifest(replicas: number, image = 'busybox:1'): string {
  return `apiVersion: v1
kind: Namespace
metadata:
  name: e2e
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: web-config
  namespace: e2e
  labels:
    app: web
data:
  greeting: hello
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: e2e
  labels:
    app: web
spec:
  replicas: ${replicas}
  selector:
    matchLabels:
      app: web
  template:
    metadata:
      labels:
        app: web
    spec:
      containers:
        - name: web
          image: ${image}
          ports:
            - containerPort: 8080
`;
}

function ok(result: RunResult, what: string): RunResult {
  assert.equal(
    result.code,
    0,
    `${what} failed (exit ${result.code}):\nstdout: ${result.stdout}\nstderr: ${result.stderr}`,
  );
  return result;
}

describe('skiff CLI end to end', { timeout: 240_000 }, () => {
  let cluster: TestCluster;
  let dir: string;
  const file = (name: string, text: string): string => {
    const path = join(dir, name);
    writeFileSync(path, text);
    return path;
  };

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'skiff-e2e-manifests-'));
    cluster = await startTestCluster('cli');
  });

  after(async () => {
    await cluster?.dispose();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('the client config is written 0600 with the socket, the TLS address, token, HTTP address and the cluster CA', () => {
    const config = readConfigFile(cluster.configPath);
    assert.ok(config?.server && config.token && config.http && config.tlsServer, JSON.stringify(config));
    assert.equal(config.server, `unix://${join(cluster.stateDir, 'api.sock')}`);
    assert.match(config.tlsServer, /^127\.0\.0\.1:\d+$/);
    assert.equal(config.ca, join(cluster.stateDir, 'pki', 'ca.crt'));
    assert.equal(statSync(cluster.configPath).mode & 0o777, 0o600);
  });

  test('the API over TCP speaks TLS only: a client without the cluster CA is told so', async () => {
    const config = readConfigFile(cluster.configPath)!;
    const plain = await cluster.skiff(
      ['get', 'ns', '--server', config.tlsServer!, '--token', config.token!],
      {
        env: { ...cluster.env, SKIFF_CONFIG: join(cluster.stateDir, 'no-config') },
      },
    );
    assert.equal(plain.code, 1, plain.stderr);
    assert.match(plain.stderr, /if it serves TLS, give this client the cluster CA/);
    const verified = await cluster.skiff(
      [
        'get',
        'ns',
        '--server',
        config.tlsServer!,
        '--token',
        config.token!,
        '--certificate-authority',
        config.ca!,
      ],
      { env: { ...cluster.env, SKIFF_CONFIG: join(cluster.stateDir, 'no-config') } },
    );
    assert.equal(verified.code, 0, verified.stderr);
    assert.match(verified.stdout, /^default\s/m);
  });

  test('apply: created, then unchanged, then configured', async () => {
    const app = file('app.yaml', appManifest(2));
    const first = ok(await cluster.skiff(['apply', '-f', app]), 'first apply');
    assert.equal(
      first.stdout,
      'namespace/e2e created\nconfigmap/web-config created\ndeployment.apps/web created\n',
    );

    const again = ok(await cluster.skiff(['apply', '-f', app]), 'second apply');
    assert.equal(
      again.stdout,
      'namespace/e2e unchanged\nconfigmap/web-config unchanged\ndeployment.apps/web unchanged\n',
    );

    const edited = file('app-edited.yaml', appManifest(3, 'busybox:2'));
    const third = ok(await cluster.skiff(['apply', '-f', edited]), 'apply of the edit');
    assert.equal(
      third.stdout,
      'namespace/e2e unchanged\nconfigmap/web-config unchanged\ndeployment.apps/web configured\n',
    );
    const json = JSON.parse(
      ok(await cluster.skiff(['get', 'deploy', 'web', '-n', 'e2e', '-o', 'json']), 'get').stdout,
    );
    assert.equal(json.spec.replicas, 3);
    assert.equal(json.spec.template.spec.containers[0].image, 'busybox:2');
    assert.equal(JSON.parse(json.metadata.annotations[LAST_APPLIED]).spec.replicas, 3);
  });

  test('apply from stdin and from a directory', async () => {
    const stdin = ok(
      await cluster.skiff(['apply', '-f', '-'], { input: appManifest(3, 'busybox:2') }),
      'apply -f -',
    );
    assert.match(stdin.stdout, /deployment\.apps\/web unchanged/);
    const sub = mkdtempSync(join(dir, 'dir-'));
    writeFileSync(
      join(sub, '10-cm.yaml'),
      'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: from-dir, namespace: e2e}\ndata: {a: "1"}\n',
    );
    writeFileSync(join(sub, 'README.md'), 'not a manifest');
    assert.equal(
      ok(await cluster.skiff(['apply', '-f', sub]), 'apply dir').stdout,
      'configmap/from-dir created\n',
    );
  });

  test('replicas set by someone else survive a re-apply of a manifest that does not set them', async () => {
    const manifest = file(
      'scaled.yaml',
      `apiVersion: apps/v1
kind: Deployment
metadata: {name: scaled, namespace: e2e}
spec:
  selector: {matchLabels: {app: scaled}}
  template:
    metadata: {labels: {app: scaled}}
    spec:
      containers: [{name: c, image: busybox}]
`,
    );
    ok(await cluster.skiff(['apply', '-f', manifest]), 'apply scaled');
    // someone else scales it (the Deployment controller writes it meanwhile too: scale reads again on a conflict)
    ok(await cluster.skiff(['scale', 'deployment/scaled', '-n', 'e2e', '--replicas', '5']), 'scale');
    const reapply = ok(await cluster.skiff(['apply', '-f', manifest]), 're-apply scaled');
    assert.equal(reapply.stdout, 'deployment.apps/scaled unchanged\n');
    const json = JSON.parse(
      ok(await cluster.skiff(['get', 'deployment', 'scaled', '-n', 'e2e', '-o', 'json']), 'get').stdout,
    );
    assert.equal(json.spec.replicas, 5);
  });

  test('get: table, wide, json, yaml, name, several kinds, -A, -l', async () => {
    const table = ok(await cluster.skiff(['get', 'deploy', '-n', 'e2e']), 'get deploy').stdout;
    assert.match(table, /^NAME\s+READY\s+UP-TO-DATE\s+AVAILABLE\s+AGE\n/);
    assert.match(table, /^web\s+\d+\/3\s+\d+\s+\d+\s+\d+s\n/m);

    const wide = ok(
      await cluster.skiff(['get', 'deployments', '-n', 'e2e', '-o', 'wide']),
      'get -o wide',
    ).stdout;
    assert.match(wide, /CONTAINERS\s+IMAGES\s+SELECTOR/);
    assert.match(wide, /web\s.*busybox:2\s+app=web/);

    const list = JSON.parse(
      ok(await cluster.skiff(['get', 'cm', '-n', 'e2e', '-o', 'json']), 'get -o json').stdout,
    );
    assert.equal(list.apiVersion, 'v1');
    assert.equal(list.kind, 'List');
    assert.deepEqual(list.items.map((i: { metadata: { name: string } }) => i.metadata.name).sort(), [
      'from-dir',
      'web-config',
    ]);

    const one = parseYaml(
      ok(await cluster.skiff(['get', 'configmap', 'web-config', '-n', 'e2e', '-o', 'yaml']), 'get -o yaml')
        .stdout,
    );
    assert.equal(one.kind, 'ConfigMap');
    assert.equal(one.data.greeting, 'hello');

    const names = ok(
      await cluster.skiff(['get', 'deploy,cm', '-n', 'e2e', '-o', 'name']),
      'get -o name',
    ).stdout;
    assert.equal(
      names,
      'deployment.apps/scaled\ndeployment.apps/web\nconfigmap/from-dir\nconfigmap/web-config\n',
    );

    const several = ok(await cluster.skiff(['get', 'deploy,cm', '-n', 'e2e']), 'get deploy,cm').stdout;
    assert.match(several, /^deployment\.apps\/web\s/m);
    assert.match(several, /^configmap\/web-config\s+1\s/m);

    const all = ok(await cluster.skiff(['get', 'ns', '-A']), 'get ns -A').stdout;
    assert.match(all, /^NAME\s+STATUS\s+AGE\n/);
    assert.match(all, /^e2e\s+Active\s/m);
    const allCm = ok(await cluster.skiff(['get', 'cm', '-A']), 'get cm -A').stdout;
    assert.match(allCm, /^NAMESPACE\s+NAME\s+DATA\s+AGE\n/);
    assert.match(allCm, /^e2e\s+web-config\s+1\s/m);

    const selected = ok(
      await cluster.skiff(['get', 'cm', '-n', 'e2e', '-l', 'app=web', '-o', 'name']),
      'get -l',
    ).stdout;
    assert.equal(selected, 'configmap/web-config\n');
    const none = ok(await cluster.skiff(['get', 'cm', '-n', 'e2e', '-l', 'app=nothing']), 'get -l none');
    assert.equal(none.stdout, '');
    assert.match(none.stderr, /No resources found in e2e namespace/);

    const missing = await cluster.skiff(['get', 'deploy', 'nope', '-n', 'e2e']);
    assert.notEqual(missing.code, 0);
    assert.match(missing.stderr, /deployments\.apps "nope" not found/);
  });

  test('get -w prints a row when an object changes', async () => {
    const child = spawn(process.execPath, [...skiffArgv, 'get', 'cm', '-n', 'e2e', '-w'], {
      env: cluster.env,
    });
    let stdout = '';
    // One listener for the whole run: output arriving between two waits must not be dropped.
    const waiters = new Set<() => void>();
    child.stdout.on('data', (chunk: Buffer) => {
      stdout += chunk.toString();
      for (const check of waiters) check();
    });
    const seen = (re: RegExp) =>
      new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`get -w: no ${re} in:\n${stdout}`));
        }, 20_000);
        const check = (): void => {
          if (!re.test(stdout)) return;
          clearTimeout(timer);
          waiters.delete(check);
          resolve();
        };
        waiters.add(check);
        check();
      });
    try {
      await seen(/web-config/);
      ok(
        await cluster.skiff(['apply', '-f', '-'], {
          input: 'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: watched, namespace: e2e}\n',
        }),
        'apply watched',
      );
      await seen(/^watched\s+0\s/m);
    } finally {
      child.kill('SIGINT');
    }
  });

  test('describe shows metadata, spec essentials and labels', async () => {
    const text = ok(await cluster.skiff(['describe', 'deployment', 'web', '-n', 'e2e']), 'describe').stdout;
    assert.match(text, /^Name:\s+web$/m);
    assert.match(text, /^Namespace:\s+e2e$/m);
    assert.match(text, /^Labels:\s+app=web$/m);
    assert.match(text, /^Replicas:\s+3 desired/m);
    assert.match(text, /Image:\s+busybox:2/);
    assert.doesNotMatch(text, /last-applied-configuration/);
    // A missing object reads as get's NotFound; the ones that exist are still described.
    const mixed = await cluster.skiff(['describe', 'deployment', 'web', 'nope', '-n', 'e2e']);
    assert.equal(mixed.code, 1);
    assert.match(mixed.stdout, /^Name:\s+web$/m);
    assert.equal(
      mixed.stderr,
      'Error from server (NotFound): deployments.apps "nope" not found in namespace "e2e"\n',
    );
    const get = await cluster.skiff(['get', 'deployment', 'nope', '-n', 'e2e']);
    assert.equal(get.stderr, mixed.stderr);
  });

  test('invalid manifests: non-zero exit, file/document/line/column/field named, nothing written', async () => {
    const cases: { name: string; text: string; expect: RegExp; absent: [string, string] }[] = [
      {
        name: 'syntax.yaml',
        text: 'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: syntax\n  namespace: e2e\ndata: {a: [1\n',
        expect: /syntax\.yaml: document 1 \(line \d+, column \d+\): YAML syntax error/,
        absent: ['cm', 'syntax'],
      },
      {
        name: 'kind.yaml',
        text: 'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: kind-ok, namespace: e2e}\n---\napiVersion: v1\nkind: Gizmo\nmetadata: {name: g}\n',
        expect: /kind\.yaml: document 2 \(line 6, column 1\): .*unknown kind "Gizmo"/,
        absent: ['cm', 'kind-ok'],
      },
      {
        name: 'field.yaml',
        text: 'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: field\n  namespace: e2e\ndata: {a: b}\nbogus: 1\n',
        expect: /field\.yaml: document 1 \(line 7, column 1\): .*bogus/,
        absent: ['cm', 'field'],
      },
      {
        name: 'name.yaml',
        text: 'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: Bad_Name\n  namespace: e2e\n',
        expect: /name\.yaml: document 1 \(line 4, column 3\): .*metadata\.name/,
        absent: ['cm', 'Bad_Name'],
      },
      {
        name: 'quantity.yaml',
        text: `apiVersion: v1
kind: Pod
metadata: {name: quantity, namespace: e2e}
spec:
  containers:
    - name: c
      image: busybox
      resources:
        limits:
          memory: lots
`,
        expect:
          /quantity\.yaml: document 1 \(line 10, column 11\): .*spec\.containers\[0\]\.resources\.limits(\.memory|\[memory\]|\["memory"\])/,
        absent: ['pod', 'quantity'],
      },
    ];
    for (const c of cases) {
      const result = await cluster.skiff(['apply', '-f', file(c.name, c.text)]);
      assert.notEqual(result.code, 0, `${c.name}: apply should fail\n${result.stdout}`);
      assert.match(result.stderr, c.expect, `${c.name}: stderr`);
      assert.equal(result.stdout, '', `${c.name}: nothing may be applied`);
      const get = await cluster.skiff(['get', c.absent[0], c.absent[1], '-n', 'e2e']);
      assert.notEqual(get.code, 0, `${c.name}: ${c.absent.join('/')} must not exist`);
    }
  });

  test('a multi-document file with one bad document writes none of them', async () => {
    const path = file(
      'partial.yaml',
      `apiVersion: v1
kind: Namespace
metadata: {name: e2e-partial}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: good, namespace: e2e-partial}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: Not-Valid!, namespace: e2e-partial}
`,
    );
    const result = await cluster.skiff(['apply', '-f', path]);
    assert.notEqual(result.code, 0);
    assert.match(result.stderr, /partial\.yaml: document 3 \(line 11, column \d+\)/);
    assert.equal(result.stdout, '');
    const ns = await cluster.skiff(['get', 'ns', 'e2e-partial']);
    assert.notEqual(ns.code, 0, 'namespace e2e-partial must not exist');
  });

  test("an object over etcd's request limit in the last document stops the apply before any write", async () => {
    const big = 'x'.repeat(900 * 1024);
    const path = file(
      'oversized.yaml',
      `apiVersion: v1
kind: Namespace
metadata: {name: e2e-oversized}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: small, namespace: e2e-oversized}
data: {a: "1"}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: large, namespace: e2e-oversized}
data:
  small.txt: "1"
  big.bin: ${big}
`,
    );
    const result = await cluster.skiff(['apply', '-f', path]);
    assert.notEqual(result.code, 0);
    assert.match(
      result.stderr,
      /oversized\.yaml: document 3 \(line 15, column \d+\): .*over the limit of 1564672.*most of it is data\[big\.bin\] \(about \d+ bytes\), and apply adds a copy of the whole manifest \(\d+ bytes\) in the kubectl\.kubernetes\.io\/last-applied-configuration annotation/,
    );
    assert.equal(result.stdout, '');
    assert.notEqual(
      (await cluster.skiff(['get', 'ns', 'e2e-oversized'])).code,
      0,
      'namespace e2e-oversized must not exist',
    );
  });

  test('an object in a namespace that does not exist stops the apply before any write', async () => {
    const path = file(
      'missing-ns.yaml',
      'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: first, namespace: e2e}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: second, namespace: no-such-ns}\n',
    );
    const result = await cluster.skiff(['apply', '-f', path]);
    assert.notEqual(result.code, 0);
    assert.match(
      result.stderr,
      /missing-ns\.yaml: document 2 \(line 7, column \d+\): metadata\.namespace: namespace "no-such-ns" does not exist/,
    );
    assert.notEqual(
      (await cluster.skiff(['get', 'cm', 'first', '-n', 'e2e'])).code,
      0,
      'configmap first must not exist',
    );
  });

  test('CronJob, Lease, PriorityClass and EndpointSlice apply and print as kubectl prints them', async () => {
    const path = file(
      'new-kinds.yaml',
      `apiVersion: batch/v1
kind: CronJob
metadata: {name: nightly, namespace: e2e}
spec:
  schedule: "30 2 * * MON-FRI"
  jobTemplate:
    spec:
      template:
        spec:
          restartPolicy: OnFailure
          containers: [{name: backup, image: busybox:1.36}]
---
apiVersion: coordination.k8s.io/v1
kind: Lease
metadata: {name: leader, namespace: e2e}
spec: {holderIdentity: cp-1, leaseDurationSeconds: 15}
---
apiVersion: scheduling.k8s.io/v1
kind: PriorityClass
metadata: {name: e2e-high}
value: 100000
globalDefault: true
description: e2e
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: web-1, namespace: e2e, labels: {kubernetes.io/service-name: web}}
addressType: IPv4
endpoints: [{addresses: [10.244.1.5]}, {addresses: [10.244.2.7]}]
ports: [{name: http, port: 8080}]
`,
    );
    const applied = await cluster.skiff(['apply', '-f', path]);
    assert.equal(applied.code, 0, applied.stderr);
    assert.equal(
      applied.stdout,
      'cronjob.batch/nightly created\nlease.coordination.k8s.io/leader created\npriorityclass.scheduling.k8s.io/e2e-high created\nendpointslice.discovery.k8s.io/web-1 created\n',
    );
    const cron = await cluster.skiff(['get', 'cj', '-n', 'e2e']);
    assert.match(cron.stdout, /^NAME\s+SCHEDULE\s+TIMEZONE\s+SUSPEND\s+ACTIVE\s+LAST SCHEDULE\s+AGE\n/);
    assert.match(cron.stdout, /\nnightly\s+30 2 \* \* MON-FRI\s+<none>\s+False\s+0\s+<none>\s+\S+\n$/);
    const pcs = await cluster.skiff(['get', 'priorityclasses.scheduling.k8s.io']);
    assert.match(pcs.stdout, /^NAME\s+VALUE\s+GLOBAL-DEFAULT\s+AGE\s+PREEMPTIONPOLICY\n/);
    assert.match(pcs.stdout, /\ne2e-high\s+100000\s+true\s+\S+\s+PreemptLowerPriority\n/);
    assert.match(pcs.stdout, /\nsystem-node-critical\s+2000001000\s+false\s+/);
    const leases = await cluster.skiff([
      'get',
      'leases',
      '-n',
      'e2e',
      '--field-selector',
      'spec.holderIdentity=cp-1',
    ]);
    assert.match(leases.stdout, /^NAME\s+HOLDER\s+AGE\nleader\s+cp-1\s+/);
    const slices = await cluster.skiff(['get', 'endpointslices', '-n', 'e2e']);
    assert.match(slices.stdout, /\nweb-1\s+IPv4\s+8080\s+10\.244\.1\.5,10\.244\.2\.7\s+/);

    // A rule only the server can judge (one global default among the stored classes) is refused
    // by the dry run: nothing of the file is written, the document is named.
    const second = file(
      'second-default.yaml',
      'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: before-pc, namespace: e2e}\n---\napiVersion: scheduling.k8s.io/v1\nkind: PriorityClass\nmetadata: {name: e2e-other}\nvalue: 5\nglobalDefault: true\n',
    );
    const refused = await cluster.skiff(['apply', '-f', second]);
    assert.notEqual(refused.code, 0);
    assert.match(
      refused.stderr,
      /second-default\.yaml: document 2 .*globalDefault is already set on "e2e-high"/,
    );
    assert.equal(refused.stdout, '');
    assert.notEqual((await cluster.skiff(['get', 'cm', 'before-pc', '-n', 'e2e'])).code, 0);
    const deleted = await cluster.skiff(['delete', '-f', path]);
    assert.equal(deleted.code, 0, deleted.stderr);
  });

  test('apply is all or nothing: an update the server refuses, or a stale pinned resourceVersion, writes nothing', async () => {
    const deployment = (selector: string) =>
      `apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: sel, namespace: e2e}\nspec:\n  selector: {matchLabels: {app: ${selector}}}\n  template:\n    metadata: {labels: {app: ${selector}}}\n    spec: {containers: [{name: c, image: busybox:1}]}\n`;
    ok(await cluster.skiff(['apply', '-f', '-'], { input: deployment('sel-a') }), 'apply the deployment');
    const changed = await cluster.skiff([
      'apply',
      '-f',
      file(
        'selector.yaml',
        `apiVersion: v1\nkind: ConfigMap\nmetadata: {name: before-sel, namespace: e2e}\n---\n${deployment('sel-b')}`,
      ),
    ]);
    assert.notEqual(changed.code, 0);
    assert.match(
      changed.stderr,
      /selector\.yaml: document 2 .*spec\.selector.*immutable|selector\.yaml: document 2 .*selector cannot change/,
    );
    assert.equal(changed.stdout, '');
    assert.notEqual(
      (await cluster.skiff(['get', 'cm', 'before-sel', '-n', 'e2e'])).code,
      0,
      'nothing was written',
    );

    ok(
      await cluster.skiff(['apply', '-f', '-'], {
        input: 'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: pinned, namespace: e2e}\ndata: {a: "1"}\n',
      }),
      'apply pinned',
    );
    const began = Date.now();
    const stale = await cluster.skiff([
      'apply',
      '-f',
      file(
        'stale.yaml',
        'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: before-rv, namespace: e2e}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: pinned, namespace: e2e, resourceVersion: "2"}\ndata: {a: "2"}\n',
      ),
    ]);
    assert.notEqual(stale.code, 0);
    assert.match(stale.stderr, /stale\.yaml: document 2 .*resourceVersion/);
    assert.ok(Date.now() - began < 10_000, 'a stale pinned resourceVersion fails at once, not after retries');
    assert.notEqual(
      (await cluster.skiff(['get', 'cm', 'before-rv', '-n', 'e2e'])).code,
      0,
      'nothing was written',
    );
  });

  test('skiff token create --role join prints a token pinning the cluster CA, with which a node joins', async () => {
    const created = ok(
      await cluster.skiff(['token', 'create', '--role', 'join']),
      'token create --role join',
    );
    const token = created.stdout.trim();
    const caPem = readFileSync(join(cluster.stateDir, 'pki', 'ca.crt'), 'utf8');
    assert.equal(token, `K10${trustBundleHash(caPem)}::${token.split('::')[1]}`);
    assert.match(created.stderr, /\(join\) created; it expires in 2[34]h/);
    assert.match(
      created.stderr,
      /a node joins with: skiff agent --server 127\.0\.0\.1:\d+ --token <the token>/,
    );
    const listed = ok(await cluster.skiff(['token', 'list']), 'token list').stdout;
    assert.match(listed, /^join-[0-9a-f]{8}\s+join\s/m);
    const dir = mkdtempSync(join(tmpdir(), 'skiff-e2e-node-'));
    try {
      const credentials = await obtainNodeCredentials({
        server: readConfigFile(cluster.configPath)!.tlsServer!,
        joinToken: token,
        nodeName: 'e2e-node',
        dir,
        log: pino({ level: 'silent' }),
      });
      assert.match(new X509Certificate(credentials.cert).subject, /CN=system:node:e2e-node/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('a wrong token is refused', async () => {
    const result = await cluster.skiff(['--token', 'not-the-token', 'get', 'ns']);
    assert.notEqual(result.code, 0);
    assert.match(result.stderr, /^error: .*(unauthenticated|token)/im);
  });

  test('api-resources, version, config view, cluster-info', async () => {
    const resources = ok(await cluster.skiff(['api-resources']), 'api-resources').stdout;
    assert.match(resources, /^NAME\s+SHORTNAMES\s+APIVERSION\s+NAMESPACED\s+KIND\n/);
    assert.match(resources, /^deployments\s+deploy\s+apps\/v1\s+true\s+Deployment$/m);

    const version = ok(await cluster.skiff(['version']), 'version').stdout;
    assert.match(version, /^Client Version: \S+\nNode\.js Version: v(\d+)\.\d+\.\d+\nServer Version: \S+\n$/);
    // the skiff on the PATH runs on Node.js 24 (or a supported 22) whatever the system's node is
    assert.ok(Number(/Node\.js Version: v(\d+)/.exec(version)![1]) >= 22, version);
    const json = JSON.parse(
      ok(await cluster.skiff(['version', '--client', '-o', 'json']), 'version -o json').stdout,
    );
    assert.deepEqual(Object.keys(json), ['clientVersion', 'nodeVersion']);

    const view = ok(await cluster.skiff(['config', 'view']), 'config view').stdout;
    const token = readConfigFile(cluster.configPath)!.token!;
    assert.match(view, /token: REDACTED/);
    assert.ok(!view.includes(token), 'the token is not printed');

    const info = JSON.parse(ok(await cluster.skiff(['cluster-info', '-o', 'json']), 'cluster-info').stdout);
    const config = readConfigFile(cluster.configPath)!;
    assert.deepEqual(info, { api: config.server, tlsApi: config.tlsServer, http: config.http });
    assert.match(
      view,
      new RegExp(
        `server: unix://${join(cluster.stateDir, 'api.sock')}\\n\\s+tls-server: 127\\.0\\.0\\.1:\\d+\\n`,
      ),
    );
    const readyz = await fetch(`${info.http}/readyz`);
    assert.equal(readyz.status, 200);
    // What cluster-info advertises is served: every path it names answers.
    const text = ok(await cluster.skiff(['cluster-info']), 'cluster-info').stdout;
    assert.doesNotMatch(text, /dashboard|registry/i, 'nothing that is not served is advertised');
    // the paths it names (not the socket's, which is a file)
    const paths = [...text.matchAll(/(?<=[(\s])\/[a-z]+\b/g)].map((match) => match[0]);
    assert.match(text, new RegExp(`running at ${config.server}\\n.*over TLS.* at ${config.tlsServer}\\n`));
    assert.ok(paths.length >= 3, text);
    for (const path of paths) assert.equal((await fetch(`${info.http}${path}`)).status, 200, path);
  });

  test('delete -f removes what the manifest names; delete by name and by -l', async () => {
    ok(await cluster.skiff(['delete', 'cm', 'from-dir', '-n', 'e2e']), 'delete by name');
    ok(
      await cluster.skiff(['apply', '-f', '-'], {
        input:
          'apiVersion: v1\nkind: Pod\nmetadata: {name: p, namespace: e2e}\nspec:\n  containers: [{name: c, image: busybox}]\n',
      }),
      'apply pod',
    );
    const pod = ok(
      await cluster.skiff(['delete', 'pod', 'p', '-n', 'e2e', '--grace-period', '0']),
      'delete --grace-period 0',
    );
    assert.equal(pod.stdout, 'pod "p" deleted\n');
    assert.notEqual((await cluster.skiff(['get', 'pod', 'p', '-n', 'e2e'])).code, 0, 'pod p is gone');
    const again = await cluster.skiff(['delete', 'pod', 'p', '-n', 'e2e']);
    assert.notEqual(again.code, 0);
    assert.match(again.stderr, /pods "p" not found/);
    const byLabel = ok(await cluster.skiff(['delete', 'deploy', '-l', 'app=web', '-n', 'e2e']), 'delete -l');
    assert.equal(byLabel.stdout, 'deployment.apps "web" deleted\n');
    const result = ok(
      await cluster.skiff(['delete', '-f', join(dir, 'app.yaml'), '--ignore-not-found']),
      'delete -f',
    );
    assert.match(result.stdout, /configmap "web-config" deleted/);
    assert.match(result.stdout, /namespace "e2e" deleted/);
    const gone = await cluster.skiff(['get', 'cm', 'web-config', '-n', 'e2e']);
    assert.notEqual(gone.code, 0);
  });
});
