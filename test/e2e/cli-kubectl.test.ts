/**
 * kubectl's verbs and flags through the built `skiff` against a real cluster (issue 9 items 12 and
 * 14): KIND/NAME arguments, -o jsonpath/custom-columns, --sort-by, --show-labels, -L, --dry-run on
 * apply/create/delete, delete --all, request-timeout durations, create generators, edit, patch,
 * label, annotate, diff, and transport errors in a person's words.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { readConfigFile } from '../../cli/config.js';
import { startTestCluster, type RunResult, type TestCluster } from './cli-harness.js';

function ok(result: RunResult, what: string): RunResult {
  assert.equal(
    result.code,
    0,
    `${what} failed (exit ${result.code}):\nstdout: ${result.stdout}\nstderr: ${result.stderr}`,
  );
  return result;
}

function failed(result: RunResult, what: string, stderr: RegExp, code?: number): RunResult {
  if (code === undefined) assert.notEqual(result.code, 0, `${what} should fail:\n${result.stdout}`);
  else assert.equal(result.code, code, `${what}: exit ${result.code}\n${result.stdout}${result.stderr}`);
  assert.match(result.stderr, stderr, what);
  return result;
}

describe('skiff speaks kubectl', { timeout: 300_000 }, () => {
  let cluster: TestCluster;
  let dir: string;
  const skiff = (...args: string[]) => cluster.skiff(args);
  const file = (name: string, text: string): string => {
    const path = join(dir, name);
    writeFileSync(path, text);
    return path;
  };

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'skiff-e2e-kubectl-'));
    cluster = await startTestCluster('kubectl');
    ok(await skiff('create', 'namespace', 'kx'), 'create namespace');
  });

  after(async () => {
    await cluster?.dispose();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('create generators: kubectl’s objects with --dry-run=client, created for real without', async () => {
    const client = ok(
      await skiff(
        'create',
        'deployment',
        'web',
        '-n',
        'kx',
        '--image',
        'nginx:1',
        '--replicas',
        '2',
        '--port',
        '80',
        '--dry-run=client',
        '-o',
        'yaml',
      ),
      'create deployment --dry-run=client',
    );
    // what `kubectl create deployment web -n kx --image=nginx:1 --replicas=2 --port=80 --dry-run=client -o yaml` prints
    assert.equal(
      client.stdout,
      `apiVersion: apps/v1
kind: Deployment
metadata:
  creationTimestamp: null
  labels:
    app: web
  name: web
  namespace: kx
spec:
  replicas: 2
  selector:
    matchLabels:
      app: web
  strategy: {}
  template:
    metadata:
      creationTimestamp: null
      labels:
        app: web
    spec:
      containers:
      - image: nginx:1
        name: nginx
        ports:
        - containerPort: 80
        resources: {}
status: {}
`,
    );
    failed(await skiff('get', 'deploy', 'web', '-n', 'kx'), 'nothing was created', /not found/);
    const server = ok(
      await skiff('create', 'cm', 'probe', '-n', 'kx', '--from-literal', 'a=1', '--dry-run=server'),
      'server dry run',
    );
    assert.equal(server.stdout, 'configmap/probe created (server dry run)\n');
    failed(await skiff('get', 'cm', 'probe', '-n', 'kx'), 'a server dry run stores nothing', /not found/);

    const data = file('greeting.txt', 'hello\n');
    assert.equal(
      ok(
        await skiff('create', 'configmap', 'cfg', '-n', 'kx', '--from-literal', 'a=1', `--from-file=${data}`),
        'create cm',
      ).stdout,
      'configmap/cfg created\n',
    );
    assert.equal(
      ok(
        await skiff('create', 'secret', 'generic', 'pw', '-n', 'kx', '--from-literal', 'password=s3cret'),
        'create secret',
      ).stdout,
      'secret/pw created\n',
    );
    assert.equal(
      ok(
        await skiff('create', 'deployment', 'web', '-n', 'kx', '--image', 'nginx:1', '--replicas', '2'),
        'create deploy',
      ).stdout,
      'deployment.apps/web created\n',
    );
    assert.equal(
      ok(
        await skiff('create', 'job', 'once', '-n', 'kx', '--image', 'busybox', '--', 'sh', '-c', 'echo hi'),
        'create job',
      ).stdout,
      'job.batch/once created\n',
    );
    const cm = parseYaml(ok(await skiff('get', 'cm', 'cfg', '-n', 'kx', '-o', 'yaml'), 'get cm').stdout);
    assert.deepEqual(cm.data, { a: '1', 'greeting.txt': 'hello\n' });
    const secret = JSON.parse(
      ok(await skiff('get', 'secret/pw', '-n', 'kx', '-o', 'json'), 'get secret').stdout,
    );
    assert.equal(Buffer.from(secret.data.password, 'base64').toString(), 's3cret');
    const job = JSON.parse(ok(await skiff('get', 'job', 'once', '-n', 'kx', '-o', 'json'), 'get job').stdout);
    assert.deepEqual(job.spec.template.spec.containers[0].command, ['sh', '-c', 'echo hi']);

    failed(
      await skiff('create', 'cm', 'cfg', '-n', 'kx'),
      'create of an existing object',
      /AlreadyExists.*configmaps "cfg" already exists/,
    );
    failed(
      await skiff('create', 'cm', 'bad', '--from-literal', 'nokey'),
      'a literal without =',
      /--from-literal nokey: invalid literal source/,
    );
    failed(
      await skiff('create', 'deployment', 'x', '--image', 'a', 'extra'),
      'a command without --',
      /exactly one NAME is required/,
    );

    // create -f: checked as a whole first; an existing object means nothing is created
    const manifests = file(
      'create.yaml',
      'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: fresh, namespace: kx}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: cfg, namespace: kx}\n',
    );
    failed(
      await skiff('create', '-f', manifests),
      'create -f with an existing object',
      /create\.yaml: document 2 .*configmaps "cfg" already exists/,
    );
    failed(await skiff('get', 'cm', 'fresh', '-n', 'kx'), 'nothing of the file was created', /not found/);
  });

  test('expose: a Service for a Deployment or a pod, from its selector and ports, as kubectl makes it', async () => {
    ok(
      await skiff('create', 'deployment', 'api', '-n', 'kx', '--image', 'web:1', '--port', '8080'),
      'create',
    );
    assert.equal(
      ok(
        await skiff('expose', 'deployment', 'api', '-n', 'kx', '--port', '80', '--target-port', '8080'),
        'expose',
      ).stdout,
      'service/api exposed\n',
    );
    const svc = JSON.parse(ok(await skiff('get', 'svc', 'api', '-n', 'kx', '-o', 'json'), 'get').stdout) as {
      metadata: { labels?: Record<string, string> };
      spec: {
        selector: Record<string, string>;
        clusterIP: string;
        ports: { port: number; targetPort: number }[];
      };
    };
    assert.deepEqual(svc.spec.selector, { app: 'api' });
    assert.deepEqual(svc.metadata.labels, { app: 'api' });
    assert.deepEqual(
      svc.spec.ports.map((p) => [p.port, p.targetPort]),
      [[80, 8080]],
    );
    assert.match(svc.spec.clusterIP, /^10\./);
    // the port its containers declare, a NodePort, another name; printed by a client dry run first
    const planned = ok(
      await skiff(
        'expose',
        'deploy/api',
        '-n',
        'kx',
        '--name',
        'api-np',
        '--type',
        'NodePort',
        '--dry-run=client',
        '-o',
        'yaml',
      ),
      'expose --dry-run=client',
    ).stdout;
    assert.match(planned, /^kind: Service$/m);
    assert.match(planned, /port: 8080\n\s+protocol: TCP\n\s+targetPort: 8080/);
    assert.match(planned, /type: NodePort/);
    ok(
      await skiff('expose', 'deploy/api', '-n', 'kx', '--name', 'api-np', '--type', 'NodePort'),
      'expose NodePort',
    );
    assert.match(
      ok(await skiff('get', 'svc', 'api-np', '-n', 'kx'), 'get').stdout,
      /^api-np\s+NodePort\s+10\.\S+\s+<none>\s+8080:3\d{4}\/TCP\s/m,
    );
    failed(
      await skiff('expose', 'deployment', 'api', '-n', 'kx'),
      'a second Service of one name',
      /already exists/,
    );
    failed(await skiff('expose', 'configmap', 'x', '-n', 'kx'), 'a ConfigMap', /not found|cannot expose/);
    failed(
      await skiff('expose', 'deployment', 'nope', '-n', 'kx', '--port', '80'),
      'a missing one',
      /not found/,
    );
  });

  test('KIND/NAME arguments, -o jsonpath, custom-columns, --sort-by, --show-labels, -L', async () => {
    for (const name of ['web-10', 'web-2', 'web-1'])
      ok(await skiff('create', 'cm', name, '-n', 'kx', '--from-literal', `n=${name}`), `create ${name}`);
    ok(
      await skiff('label', 'cm', 'web-2', '-n', 'kx', 'app.kubernetes.io/name=two', 'tier=fe'),
      'label web-2',
    );

    const two = ok(await skiff('get', 'deploy/web', 'cm/cfg', '-n', 'kx'), 'get KIND/NAME').stdout;
    assert.match(two, /^NAME\s+READY\s+UP-TO-DATE\s+AVAILABLE\s+AGE\ndeployment\.apps\/web\s+0\/2\s/);
    assert.match(two, /\n\nNAME\s+DATA\s+AGE\nconfigmap\/cfg\s+2\s/);
    failed(
      await skiff('get', 'deploy', 'cm/cfg', '-n', 'kx'),
      'mixed forms',
      /no need to give a kind as a separate argument/,
    );

    const range = ok(
      await skiff(
        'get',
        'cm',
        '-n',
        'kx',
        '-l',
        'tier=fe',
        '-o',
        'jsonpath={range .items[*]}{.metadata.name}{"\\t"}{.data.n}{"\\n"}{end}',
      ),
      'jsonpath range',
    );
    assert.equal(range.stdout, 'web-2\tweb-2\n');
    const single = ok(
      await skiff('get', 'deploy/web', '-n', 'kx', '-o', 'jsonpath={.spec.replicas}'),
      'jsonpath one',
    );
    assert.equal(single.stdout, '2', 'no newline of its own, as kubectl');
    const filtered = ok(
      await skiff('get', 'cm', '-n', 'kx', '-o', 'jsonpath={.items[?(@.data.n=="web-10")].metadata.name}'),
      'jsonpath filter',
    );
    assert.equal(filtered.stdout, 'web-10');

    const sorted = ok(
      await skiff(
        'get',
        'cm',
        '-n',
        'kx',
        '-l',
        '!nothing',
        '--sort-by',
        '.metadata.name',
        '-o',
        'custom-columns=NAME:.metadata.name,N:.data.n,MISSING:.spec.x',
      ),
      'custom-columns sorted',
    ).stdout;
    assert.equal(
      sorted,
      'NAME     N        MISSING\ncfg      <none>   <none>\nweb-1    web-1    <none>\nweb-2    web-2    <none>\nweb-10   web-10   <none>\n',
    );
    const labels = ok(
      await skiff(
        'get',
        'cm',
        'web-1',
        'web-2',
        '-n',
        'kx',
        '--show-labels',
        '-L',
        'app.kubernetes.io/name',
        '-L',
        'tier',
      ),
      'labels columns',
    ).stdout;
    assert.match(labels, /^NAME\s+DATA\s+AGE\s+NAME\s+TIER\s+LABELS\n/);
    assert.match(labels, /\nweb-1\s+1\s+\S+\s+<none>\n/);
    assert.match(labels, /\nweb-2\s+1\s+\S+\s+two\s+fe\s+app\.kubernetes\.io\/name=two,tier=fe\n/);

    const yaml = ok(await skiff('get', 'cm', 'cfg', '-n', 'kx', '-o', 'yaml'), 'yaml').stdout;
    assert.match(
      yaml,
      /\n {2}creationTimestamp: "\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ"\n/,
      'timestamps are quoted',
    );
    assert.match(yaml, /^apiVersion: v1\ndata:\n {2}a: "1"\n/, 'keys sorted, as kubectl writes them');
    const list = ok(await skiff('get', 'cm', '-n', 'kx', '-l', 'tier=fe', '-o', 'yaml'), 'yaml list').stdout;
    assert.match(list, /^apiVersion: v1\nitems:\n- apiVersion: v1\n/, 'list items at their key’s indent');

    failed(
      await skiff('get', 'cm', '-n', 'kx', '-o', 'jsonpath={.items[5]}'),
      'index past the end',
      /error executing jsonpath .*array index out of bounds/,
    );
    failed(
      await skiff('get', 'cm', '-n', 'kx', '-o', 'jsonpath={.items['),
      'bad template',
      /error parsing jsonpath \{\.items\[, unclosed action/,
    );
    failed(
      await skiff('get', 'cm', '-n', 'kx', '--sort-by', '.nope'),
      'sort by nothing',
      /couldn't find any field with path "\.nope"/,
    );
  });

  test('services print as kubectl: LoadBalancer <pending>, ExternalName its name', async () => {
    ok(
      await cluster.skiff(['apply', '-f', '-'], {
        input: `apiVersion: v1
kind: Service
metadata: {name: lb, namespace: kx}
spec: {type: LoadBalancer, selector: {app: web}, ports: [{port: 80}]}
---
apiVersion: v1
kind: Service
metadata: {name: ext, namespace: kx}
spec: {type: ExternalName, externalName: db.example.com}
`,
      }),
      'apply services',
    );
    const table = ok(await skiff('get', 'svc', '-n', 'kx'), 'get svc').stdout;
    assert.match(table, /\next\s+ExternalName\s+<none>\s+db\.example\.com\s+<none>\s/);
    assert.match(table, /\nlb\s+LoadBalancer\s+\S+\s+<pending>\s+80(:\d+)?\/TCP\s/);
  });

  test('--dry-run on apply and delete; delete --all; delete -l with no match', async () => {
    const manifest = file(
      'dry.yaml',
      'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: dry, namespace: kx}\ndata: {a: "1"}\n',
    );
    assert.equal(
      ok(await skiff('apply', '-f', manifest, '--dry-run=client'), 'apply client').stdout,
      'configmap/dry created (dry run)\n',
    );
    assert.equal(
      ok(await skiff('apply', '-f', manifest, '--dry-run=server'), 'apply server').stdout,
      'configmap/dry created (server dry run)\n',
    );
    failed(await skiff('get', 'cm', 'dry', '-n', 'kx'), 'dry runs create nothing', /not found/);
    ok(await skiff('apply', '-f', manifest), 'apply');
    writeFileSync(manifest, readFileSync(manifest, 'utf8').replace('a: "1"', 'a: "2"'));
    const server = ok(
      await skiff('apply', '-f', manifest, '--dry-run=server', '-o', 'jsonpath={.data.a}'),
      'apply server -o',
    );
    assert.equal(server.stdout, '2', 'the server’s answer is printed');
    assert.equal(
      ok(await skiff('get', 'cm', 'dry', '-n', 'kx', '-o', 'jsonpath={.data.a}'), 'get').stdout,
      '1',
    );
    failed(
      await skiff('apply', '-f', manifest, '--dry-run=later'),
      'bad strategy',
      /--dry-run must be "none", "client" or "server", got "later"/,
    );

    assert.equal(
      ok(await skiff('delete', 'cm/dry', '-n', 'kx', '--dry-run=client'), 'delete client').stdout,
      'configmap "dry" deleted (dry run)\n',
    );
    assert.equal(
      ok(await skiff('delete', 'cm', 'dry', '-n', 'kx', '--dry-run=server'), 'delete server').stdout,
      'configmap "dry" deleted (server dry run)\n',
    );
    ok(await skiff('get', 'cm', 'dry', '-n', 'kx'), 'still there');

    const none = ok(
      await skiff('delete', 'cm', '-l', 'app=nothing-matches', '-n', 'kx'),
      'delete -l no match',
    );
    assert.equal(none.stdout, 'No resources found\n');

    ok(await skiff('create', 'ns', 'kx-all'), 'ns for --all');
    for (const name of ['a', 'b']) ok(await skiff('create', 'cm', name, '-n', 'kx-all'), `cm ${name}`);
    const all = ok(await skiff('delete', 'cm', '--all', '-n', 'kx-all'), 'delete --all');
    assert.equal(all.stdout, 'configmap "a" deleted\nconfigmap "b" deleted\n');
    assert.equal(
      ok(await skiff('delete', 'cm', '--all', '-n', 'kx-all'), 'again').stdout,
      'No resources found\n',
    );
    failed(
      await skiff('delete', 'cm', '-n', 'kx-all'),
      'no names, no selector',
      /name the objects, select them with -l or --field-selector, or pass --all/,
    );
  });

  test('--request-timeout takes durations', async () => {
    ok(await skiff('--request-timeout', '5s', 'get', 'ns'), '5s');
    ok(await skiff('get', 'ns', '--request-timeout=2500ms'), '2500ms');
    ok(await skiff('get', 'ns', '--request-timeout', '3000'), 'bare milliseconds');
    failed(
      await skiff('--request-timeout', '1x', 'get', 'ns'),
      'bad duration',
      /--request-timeout must be a duration such as 1s, 500ms or 2m/,
    );
  });

  test('patch: strategic (default), merge and JSON, against the live object', async () => {
    assert.equal(
      ok(
        await skiff(
          'patch',
          'deploy',
          'web',
          '-n',
          'kx',
          '-p',
          '{"spec":{"template":{"spec":{"containers":[{"name":"nginx","image":"nginx:2"}]}}}}',
        ),
        'strategic',
      ).stdout,
      'deployment.apps/web patched\n',
    );
    const live = JSON.parse(ok(await skiff('get', 'deploy/web', '-n', 'kx', '-o', 'json'), 'get').stdout);
    assert.equal(live.spec.template.spec.containers.length, 1, 'merged by name, not appended');
    assert.equal(live.spec.template.spec.containers[0].image, 'nginx:2');
    assert.equal(
      ok(
        await skiff('patch', 'deploy/web', '-n', 'kx', '--type', 'merge', '-p', 'spec: {replicas: 3}'),
        'merge',
      ).stdout,
      'deployment.apps/web patched\n',
    );
    assert.equal(
      ok(
        await skiff('patch', 'deploy/web', '-n', 'kx', '--type', 'merge', '-p', '{"spec":{"replicas":3}}'),
        'no change',
      ).stdout,
      'deployment.apps/web patched (no change)\n',
    );
    ok(
      await skiff(
        'patch',
        'deploy',
        'web',
        '-n',
        'kx',
        '--type',
        'json',
        '-p',
        '[{"op":"test","path":"/spec/replicas","value":3},{"op":"replace","path":"/spec/replicas","value":4}]',
      ),
      'json',
    );
    assert.equal(
      ok(await skiff('get', 'deploy/web', '-n', 'kx', '-o', 'jsonpath={.spec.replicas}'), 'get').stdout,
      '4',
    );
    const dry = ok(
      await skiff(
        'patch',
        'deploy/web',
        '-n',
        'kx',
        '--type',
        'merge',
        '-p',
        '{"spec":{"replicas":7}}',
        '--dry-run=server',
      ),
      'dry',
    );
    assert.equal(dry.stdout, 'deployment.apps/web patched (server dry run)\n');
    assert.equal(
      ok(await skiff('get', 'deploy/web', '-n', 'kx', '-o', 'jsonpath={.spec.replicas}'), 'get').stdout,
      '4',
    );

    failed(
      await skiff('patch', 'deploy/web', '-n', 'kx', '-p', '{"spec":{"replicas":-1}}'),
      'invalid result',
      /patch deployment\.apps\/web: .*spec\.replicas/,
    );
    failed(
      await skiff(
        'patch',
        'deploy/web',
        '-n',
        'kx',
        '--type',
        'json',
        '-p',
        '[{"op":"test","path":"/spec/replicas","value":9}]',
      ),
      'failed test',
      /operation \[0\] \(test \/spec\/replicas\): test failed/,
    );
    failed(
      await skiff('patch', 'deploy/web', '-n', 'kx', '-p', '{"metadata":{"name":"other"}}'),
      'rename',
      /metadata\.name: cannot be changed/,
    );
    failed(
      await skiff('patch', 'deploy/web', '-n', 'kx', '-p', '{"spec":{"$retainKeys":[]}}'),
      'unsupported directive',
      /"\$retainKeys" is not supported; use --type merge or --type json/,
    );
    failed(
      await skiff('patch', 'deploy/web', '-n', 'kx', '--type', 'xml', '-p', '{}'),
      'bad type',
      /--type xml: use strategic, merge or json/,
    );
  });

  test('label and annotate', async () => {
    assert.equal(
      ok(await skiff('label', 'deploy', 'web', '-n', 'kx', 'env=prod'), 'label').stdout,
      'deployment.apps/web labeled\n',
    );
    failed(
      await skiff('label', 'deploy', 'web', '-n', 'kx', 'env=dev'),
      'no overwrite',
      /'env' already has a value \(prod\), and --overwrite is false/,
    );
    ok(await skiff('label', 'deploy/web', '-n', 'kx', 'env=dev', '--overwrite'), 'overwrite');
    assert.equal(
      ok(await skiff('label', 'deploy/web', '-n', 'kx', 'env-'), 'unlabel').stdout,
      'deployment.apps/web unlabeled\n',
    );
    assert.equal(
      ok(
        await skiff('annotate', 'cm', '--all', '-n', 'kx', 'owner=team-a', '--dry-run=server'),
        'annotate --all dry',
      ).stdout.split('\n')[0],
      'configmap/cfg annotated (server dry run)',
    );
    ok(await skiff('annotate', 'deploy/web', '-n', 'kx', 'note=hello world'), 'annotate');
    assert.equal(
      ok(
        await skiff('get', 'deploy/web', '-n', 'kx', '-o', "jsonpath={.metadata.annotations['note']}"),
        'get',
      ).stdout,
      'hello world',
    );
    failed(
      await skiff('label', 'deploy/web', '-n', 'kx', 'bad key=1'),
      'bad key',
      /invalid label key "bad key"/,
    );
  });

  test('cordon and uncordon: SchedulingDisabled, already, -l, dry runs; a missing node is an error', async () => {
    const node = (name: string, zone: string): string =>
      `apiVersion: v1\nkind: Node\nmetadata: {name: ${name}, labels: {zone: ${zone}}}\nspec: {}\n`;
    ok(
      await cluster.skiff(['apply', '-f', '-'], { input: `${node('cn-1', 'a')}---\n${node('cn-2', 'b')}` }),
      'nodes',
    );
    assert.equal(ok(await skiff('cordon', 'cn-1'), 'cordon').stdout, 'node/cn-1 cordoned\n');
    assert.equal(ok(await skiff('cordon', 'cn-1'), 'cordon again').stdout, 'node/cn-1 already cordoned\n');
    assert.match(ok(await skiff('get', 'nodes', 'cn-1'), 'get').stdout, /^cn-1\s+\S*SchedulingDisabled\s/m);
    assert.equal(
      ok(await skiff('get', 'node', 'cn-1', '-o', 'jsonpath={.spec.unschedulable}'), 'jsonpath').stdout,
      'true',
    );
    assert.equal(
      ok(await skiff('cordon', '-l', 'zone=b', '--dry-run=server'), 'dry').stdout,
      'node/cn-2 cordoned (server dry run)\n',
    );
    assert.equal(
      ok(await skiff('get', 'node', 'cn-2', '-o', 'jsonpath={.spec.unschedulable}'), 'not stored').stdout,
      '',
    );
    assert.equal(
      ok(await skiff('uncordon', 'cn-1', 'cn-2'), 'uncordon').stdout,
      'node/cn-1 uncordoned\nnode/cn-2 already uncordoned\n',
    );
    assert.doesNotMatch(ok(await skiff('get', 'nodes', 'cn-1'), 'get').stdout, /SchedulingDisabled/);
    failed(await skiff('cordon', 'no-such-node'), 'missing', /no-such-node.*not found/);
    failed(await skiff('cordon'), 'nothing named', /cordon: name the nodes, or select them with -l/);
    ok(await cluster.skiff(['delete', 'node', 'cn-1', 'cn-2']), 'clean up');
  });

  test('edit: $EDITOR, re-opened with the error on an invalid edit, cancelled when unchanged', async () => {
    const seen = join(dir, 'seen');
    const editor = file(
      'editor.sh',
      `#!/bin/sh
n=$(cat "${seen}.count" 2>/dev/null || echo 0); n=$((n+1)); echo $n > "${seen}.count"
cp "$1" "${seen}.$n"
if [ $n = 1 ]; then sed -i 's/^  replicas: .*/  replicas: -5/' "$1"; else sed -i 's/^  replicas: .*/  replicas: 6/' "$1"; fi
`,
    );
    chmodSync(editor, 0o755);
    const env = { ...cluster.env, SKIFF_EDITOR: editor, EDITOR: 'false' };
    const edited = ok(await cluster.skiff(['edit', 'deploy/web', '-n', 'kx'], { env }), 'edit');
    assert.equal(edited.stdout, 'deployment.apps/web edited\n');
    const first = readFileSync(`${seen}.1`, 'utf8');
    assert.match(first, /^# Please edit the object below\. Lines beginning with a '#' will be ignored,\n/);
    assert.match(first, /\nkind: Deployment\n/);
    const second = readFileSync(`${seen}.2`, 'utf8');
    assert.match(second, /\n# deployments\.apps "web" was not valid:\n# \* .*spec\.replicas.*-5\n#\n/);
    assert.match(second, /\n {2}replicas: -5\n/, 'the user’s edit is kept');
    assert.equal(
      ok(await skiff('get', 'deploy/web', '-n', 'kx', '-o', 'jsonpath={.spec.replicas}'), 'get').stdout,
      '6',
    );

    const unchanged = ok(
      await cluster.skiff(['edit', 'cm', 'cfg', '-n', 'kx'], {
        env: { ...cluster.env, SKIFF_EDITOR: 'true' },
      }),
      'unchanged',
    );
    assert.equal(unchanged.stdout, 'Edit cancelled, no changes made.\n');
    // an edit that stays invalid, saved again unchanged, gives up and keeps a copy
    const stubborn = file(
      'stubborn.sh',
      '#!/bin/sh\nsed -i \'s/^  replicas: [0-9]*$/  replicas: -1/\' "$1"\n',
    );
    chmodSync(stubborn, 0o755);
    const gaveUp = await cluster.skiff(['edit', 'deploy', 'web', '-n', 'kx'], {
      env: { ...cluster.env, SKIFF_EDITOR: stubborn },
    });
    failed(
      gaveUp,
      'edit that stays invalid',
      /Edit cancelled, no valid changes were saved\.\nA copy of your changes has been stored to "([^"]+)"/,
    );
    const copy = /stored to "([^"]+)"/.exec(gaveUp.stderr)![1]!;
    assert.match(readFileSync(copy, 'utf8'), /replicas: -1/);
    rmSync(join(copy, '..'), { recursive: true, force: true });
  });

  test('diff: 0 when apply would change nothing, 1 with the unified diff, 2 on an error', async () => {
    const manifest = file(
      'diff.yaml',
      'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: differ, namespace: kx}\ndata: {a: "1", b: "2"}\n',
    );
    const fresh = await skiff('diff', '-f', manifest);
    assert.equal(fresh.code, 1, fresh.stderr);
    assert.match(
      fresh.stdout,
      /^diff -u -N LIVE\/v1\.ConfigMap\.kx\.differ MERGED\/v1\.ConfigMap\.kx\.differ\n--- LIVE\/v1\.ConfigMap\.kx\.differ\n\+\+\+ MERGED\/v1\.ConfigMap\.kx\.differ\n@@ -0,0 \+1,\d+ @@\n\+apiVersion: v1\n/,
    );
    ok(await skiff('apply', '-f', manifest), 'apply');
    const same = await skiff('diff', '-f', manifest);
    assert.equal(same.code, 0, same.stderr);
    assert.equal(same.stdout, '');
    writeFileSync(manifest, readFileSync(manifest, 'utf8').replace('b: "2"', 'b: "3"'));
    const changed = await skiff('diff', '-f', manifest);
    assert.equal(changed.code, 1, changed.stderr);
    assert.match(changed.stdout, /\n {3}a: "1"\n- {2}b: "2"\n\+ {2}b: "3"\n/);
    assert.match(changed.stdout, /\n-  generation: 1\n\+  generation: 2\n/);
    assert.equal(
      ok(await skiff('get', 'cm', 'differ', '-n', 'kx', '-o', 'jsonpath={.data.b}'), 'get').stdout,
      '2',
      'diff writes nothing',
    );
    failed(
      await skiff('diff', '-f', join(dir, 'absent.yaml')),
      'missing file',
      /no such file or directory/,
      2,
    );
    failed(await skiff('diff'), 'no -f', /required option/, 2);
  });

  test('transport errors: a deadline and an oversized token, without gRPC internals', async () => {
    const sockets: Socket[] = [];
    const blackhole: Server = createServer((socket) => sockets.push(socket));
    await new Promise<void>((resolve) => blackhole.listen(0, '127.0.0.1', resolve));
    const address = `127.0.0.1:${(blackhole.address() as { port: number }).port}`;
    try {
      const silent = await skiff('--server', address, '--token', 'x', '--request-timeout', '1s', 'get', 'ns');
      assert.equal(silent.code, 1);
      assert.equal(silent.stderr, `error: no answer from the control plane at ${address} within 1 s\n`);
    } finally {
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => blackhole.close(resolve));
    }
    const server = readConfigFile(cluster.configPath)!.server!;
    const config = file('big-token-config', `server: ${server}\ntoken: ${'a'.repeat(300_000)}\n`);
    const big = await cluster.skiff(['get', 'ns'], { env: { ...cluster.env, SKIFF_CONFIG: config } });
    assert.equal(big.code, 1);
    assert.equal(
      big.stderr,
      `error: the control plane at ${server} refused the request: its headers are larger than it accepts: the bearer token is 300000 bytes; check the token in your client config\n`,
    );
  });
});
