/**
 * Node agents through the built binary: `skiff up --agents 2` starts two nodes on this machine,
 * an image pushed to the cluster registry runs as pods bound to them (the agents pull it), and
 * `skiff get`/`describe` show what runs; `skiff down` stops the agents and leaves no container.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AGENT_NODE_FLAGS } from '../../cli/commands/agent.js';
import { archiveTar, busyboxImage, ociLayout } from '../fixtures/images.js';
import type { Pod } from '../../proto/gen/types.js';
import { connectCluster, pidRunning, prepareTestCluster, type RunResult } from './cli-harness.js';

function ok(result: RunResult, what: string): RunResult {
  assert.equal(
    result.code,
    0,
    `${what} failed (exit ${result.code}):\nstdout: ${result.stdout}\nstderr: ${result.stderr}`,
  );
  return result;
}

async function eventually(what: string, check: () => Promise<boolean>, timeoutMs = 60_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > until) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

describe('node agents: skiff up --agents 2', { timeout: 300_000 }, () => {
  const cluster = prepareTestCluster('agents');
  const work = mkdtempSync(join(tmpdir(), 'skiff-e2e-agents-work-'));
  let nodes: string[] = [];
  let agentPids: number[] = [];
  let netnsNames: string[] = [];
  /** The node the scheduler put web-0 on. */
  let web0Node = '';
  before(async () => {
    ok(await cluster.up(2), 'up --agents 2');
    const record = JSON.parse(readFileSync(join(cluster.stateDir, 'cluster.json'), 'utf8')) as {
      agents: { name: string; pid: number }[];
    };
    nodes = record.agents.map((a) => a.name);
    agentPids = record.agents.map((a) => a.pid);
  });
  after(async () => {
    await cluster.dispose();
    rmSync(work, { recursive: true, force: true });
  });

  test('two nodes register and are Ready, with -o wide showing their address and allocatable resources', async () => {
    assert.equal(nodes.length, 2);
    // each joined with the join token `up` made: a client certificate of the cluster CA, not a token
    for (const name of nodes) {
      const cert = new X509Certificate(
        readFileSync(join(cluster.stateDir, 'nodes', name, 'pki', 'node.crt')),
      );
      assert.match(cert.subject, new RegExp(`CN=system:node:${name}`));
    }
    const tokens = ok(await cluster.skiff(['token', 'list']), 'token list').stdout;
    assert.match(tokens, /\sjoin\s/);
    assert.match(tokens, /\spull\s/, 'nodes were given registry pull tokens');
    const wide = ok(await cluster.skiff(['get', 'nodes', '-o', 'wide']), 'get nodes -o wide').stdout;
    const [header, ...rows] = wide.trim().split('\n');
    assert.match(
      header!,
      /^NAME\s+STATUS\s+ROLES\s+AGE\s+VERSION\s+INTERNAL-IP\s+OS-IMAGE\s+KERNEL\s+CPU\s+MEMORY\s+PODS/,
    );
    for (const name of nodes) {
      const row = rows.find((r) => r.startsWith(`${name} `));
      assert.ok(row, `${name} is listed:\n${wide}`);
      assert.match(row!, /\sReady\s/);
      assert.match(row!, /\s172\.30\.\d+\.[12]\s/, "its address on the nodes' switch");
      assert.match(row!, /\s110\s*$/);
    }
    const described = ok(await cluster.skiff(['describe', 'node', nodes[0]!]), 'describe node').stdout;
    for (const section of [
      'Capacity:',
      'Allocatable:',
      'System Info:',
      'Conditions:',
      'Non-terminated Pods:',
      'Allocated resources:',
    ])
      assert.match(described, new RegExp(section), described);
    assert.match(described, /PodCIDR:\s+10\.244\.\d+\.0\/24/);
  });

  test('each agent runs as the pid up recorded, relaunched with its memory settings, well under 80 MB idle', () => {
    for (const pid of agentPids) {
      const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
      for (const flag of AGENT_NODE_FLAGS)
        assert.ok(argv.includes(flag), `agent ${pid} runs with ${flag}: ${argv.join(' ')}`);
      assert.ok(argv.includes('agent'), argv.join(' '));
      // issue 11's goal is < 80 MB; an idle agent is ~70 MB, ~90 MB it was before the settings
      const rssKiB = Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1]);
      assert.ok(rssKiB < 80 * 1024, `agent ${pid} RSS ${rssKiB} KiB`);
    }
  });

  test('an image pushed to the cluster registry runs as pods the scheduler spread over both nodes; get pods -o wide shows them', async () => {
    const archive = join(work, 'images.tar');
    writeFileSync(archive, archiveTar(ociLayout([busyboxImage('busybox:1')])));
    const image = (...args: string[]) => cluster.skiff(['image', '--root', join(work, 'root'), ...args]);
    ok(await image('load', '-i', archive), 'image load');
    ok(await image('tag', 'busybox:1', 'web:1'), 'image tag');
    ok(await image('push', 'web:1'), 'image push');
    const manifest = nodes
      .map(
        (_, i) =>
          // no node named: the scheduler places them, one a node (required anti-affinity)
          `apiVersion: v1\nkind: Pod\nmetadata: {name: web-${i}, namespace: default, labels: {app: web}}\nspec:\n  terminationGracePeriodSeconds: 1\n  affinity:\n    podAntiAffinity:\n      requiredDuringSchedulingIgnoredDuringExecution:\n      - labelSelector: {matchLabels: {app: web}}\n        topologyKey: kubernetes.io/hostname\n  containers:\n  - name: web\n    image: web:1\n    command: [sh, -c, 'echo serving on $(hostname); sleep 3600']\n`,
      )
      .join('---\n');
    writeFileSync(join(work, 'pods.yaml'), manifest);
    ok(await cluster.skiff(['apply', '-f', join(work, 'pods.yaml')]), 'apply pods');
    await eventually('both pods Running', async () => {
      const out = (await cluster.skiff(['get', 'pods', '-o', 'wide'])).stdout;
      return nodes.every((_, i) => new RegExp(`^web-${i}\\s+1/1\\s+Running\\s`, 'm').test(out));
    });
    const wide = ok(await cluster.skiff(['get', 'pods', '-o', 'wide']), 'get pods -o wide').stdout;
    assert.match(
      wide.split('\n')[0]!,
      /^NAME\s+READY\s+STATUS\s+RESTARTS\s+AGE\s+IP\s+NODE\s+NOMINATED NODE\s+READINESS GATES$/,
    );
    const placed = nodes.map((_, i) => {
      const row = new RegExp(
        `^web-${i}\\s.*\\s10\\.244\\.\\d+\\.\\d+\\s+(\\S+)\\s+<none>\\s+<none>\\s*$`,
        'm',
      ).exec(wide);
      assert.ok(row, wide);
      return row[1]!;
    });
    assert.deepEqual([...placed].sort(), [...nodes].sort(), 'one pod on each node');
    web0Node = placed[0]!;
    // each node's pods live in the node's own network namespace, never in the machine's
    const record = JSON.parse(readFileSync(join(cluster.stateDir, 'cluster.json'), 'utf8')) as {
      agents: { netns: string }[];
    };
    netnsNames = record.agents.map((a) => a.netns);
    for (const netns of netnsNames)
      assert.match(
        execFileSync('ip', ['-n', netns, '-br', 'addr']).toString(),
        /^skiff0\s+UP\s+10\.244\.\d+\.1\/24/m,
      );
    assert.doesNotMatch(
      execFileSync('ip', ['-br', 'link']).toString(),
      /^skiff0\s/m,
      'no bridge in the machine namespace',
    );
    const described = ok(await cluster.skiff(['describe', 'pod', 'web-0']), 'describe pod').stdout;
    for (const reason of ['Pulling', 'Pulled', 'Created', 'Started'])
      assert.match(described, new RegExp(`\\b${reason}\\b`), `${reason} event in:\n${described}`);
    assert.match(described, new RegExp(`Scheduled\\s.*Successfully assigned default/web-0 to ${web0Node}`));
    // the API gave it Kubernetes' default tolerations of a node's outage
    assert.match(
      described,
      /Tolerations:\s+node\.kubernetes\.io\/not-ready:NoExecute op=Exists for 300s\n\s+node\.kubernetes\.io\/unreachable:NoExecute op=Exists for 300s\n/,
    );
    const nodeView = ok(await cluster.skiff(['describe', 'node', web0Node]), 'describe node').stdout;
    assert.match(nodeView, /Non-terminated Pods:\s+\(1 in total\)/);
    assert.match(nodeView, /default\s+web-0\s/);
    const events = ok(await cluster.skiff(['get', 'events']), 'get events').stdout;
    assert.match(events, /Started container web/);
  });

  test('a Service selecting the pods gets a ClusterIP, and its EndpointSlice and Endpoints list their addresses on their nodes', async () => {
    writeFileSync(
      join(work, 'svc.yaml'),
      'apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: default}\nspec:\n  selector: {app: web}\n  ports: [{name: http, port: 80, targetPort: 8080}]\n',
    );
    ok(await cluster.skiff(['apply', '-f', join(work, 'svc.yaml')]), 'apply service');
    const pods = JSON.parse(
      ok(await cluster.skiff(['get', 'pods', '-l', 'app=web', '-o', 'json']), 'get pods').stdout,
    ) as {
      items: Pod[];
    };
    const ips = pods.items.map((p) => p.status!.podIP!).sort();
    assert.equal(ips.length, 2);
    await eventually('the slice lists both pods', async () => {
      const out = (await cluster.skiff(['get', 'endpointslices', '-l', 'kubernetes.io/service-name=web']))
        .stdout;
      return ips.every((ip) => out.includes(ip)) && /\sIPv4\s+8080\s/.test(out);
    });
    const endpoints = ok(await cluster.skiff(['get', 'endpoints', 'web']), 'get endpoints').stdout;
    for (const ip of ips) assert.match(endpoints, new RegExp(`${ip.replaceAll('.', '\\.')}:8080`));
    const slice = JSON.parse(
      ok(
        await cluster.skiff(['get', 'endpointslices', '-l', 'kubernetes.io/service-name=web', '-o', 'json']),
        'get',
      ).stdout,
    ) as { items: { endpoints: { nodeName: string; conditions: { ready: boolean } }[] }[] };
    assert.deepEqual(
      slice.items[0]!.endpoints.map((e) => e.nodeName).sort(),
      pods.items.map((p) => p.spec.nodeName).sort(),
      'each endpoint names its node',
    );
    assert.ok(slice.items[0]!.endpoints.every((e) => e.conditions.ready));
    assert.match(
      ok(await cluster.skiff(['get', 'svc', 'web']), 'get svc').stdout,
      /^web\s+ClusterIP\s+10\.(9[6-9]|10\d|11[01])\.\d+\.\d+\s+<none>\s+80\/TCP\s/m,
    );
  });

  test('deleting a pod stops it on its node and removes it', async () => {
    ok(await cluster.skiff(['delete', 'pod', 'web-1']), 'delete pod');
    await eventually(
      'web-1 gone',
      async () => !/^web-1\s/m.test((await cluster.skiff(['get', 'pods'])).stdout),
    );
  });

  test('drain refuses to evict a pod no controller manages without --force, then evicts it and leaves the node cordoned', async () => {
    const node = web0Node;
    const refused = await cluster.skiff(['drain', node]);
    assert.notEqual(refused.code, 0);
    assert.match(refused.stderr, /default\/web-0: not managed by a controller .*\(use --force\)/);
    assert.match(refused.stderr, /nothing was evicted/);
    assert.match((await cluster.skiff(['get', 'pods'])).stdout, /^web-0\s+1\/1\s+Running/m);
    const drained = ok(
      await cluster.skiff(['drain', node, '--force', '--grace-period', '1', '--timeout', '60s']),
      'drain --force',
    );
    assert.match(drained.stdout, /evicting pod default\/web-0/);
    assert.match(drained.stdout, new RegExp(`node/${node} drained`));
    assert.doesNotMatch((await cluster.skiff(['get', 'pods'])).stdout, /^web-0\s/m);
    assert.match(
      ok(await cluster.skiff(['get', 'node', node]), 'get node').stdout,
      /Ready,SchedulingDisabled/,
    );
    ok(await cluster.skiff(['uncordon', node]), 'uncordon');
  });

  test('a DaemonSet runs a pod on every node; a Deployment rolls a new image on real agents with its readiness kept; drain --ignore-daemonsets keeps the daemon', async () => {
    const image = (...args: string[]) => cluster.skiff(['image', '--root', join(work, 'root'), ...args]);
    ok(await image('tag', 'busybox:1', 'web:2'), 'image tag');
    ok(await image('push', 'web:2'), 'image push');
    const workloads = `apiVersion: apps/v1
kind: DaemonSet
metadata: {name: node-agent, namespace: default}
spec:
  selector: {matchLabels: {app: node-agent}}
  template:
    metadata: {labels: {app: node-agent}}
    spec:
      terminationGracePeriodSeconds: 1
      containers: [{name: c, image: 'web:1', command: [sleep, '3600']}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: shop, namespace: default}
spec:
  replicas: 4
  strategy: {type: RollingUpdate, rollingUpdate: {maxSurge: 1, maxUnavailable: 1}}
  selector: {matchLabels: {app: shop}}
  template:
    metadata: {labels: {app: shop}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: c
        image: 'web:1'
        command: [sh, -c, 'sleep 1; touch /tmp/ready; sleep 3600']
        readinessProbe: {exec: {command: [cat, /tmp/ready]}, periodSeconds: 1}
`;
    writeFileSync(join(work, 'workloads.yaml'), workloads);
    ok(await cluster.skiff(['apply', '-f', join(work, 'workloads.yaml')]), 'apply workloads');
    ok(
      await cluster.skiff(['rollout', 'status', 'deployment/shop', '--timeout', '120s'], {
        timeoutMs: 130_000,
      }),
      'rollout status',
    );
    await eventually('a daemon on each node', async () => {
      const out = (await cluster.skiff(['get', 'pods', '-l', 'app=node-agent', '-o', 'wide'])).stdout;
      return nodes.every((node) =>
        new RegExp(`^node-agent-\\S+\\s+1/1\\s+Running\\s.*\\s${node}\\s`, 'm').test(out),
      );
    });
    assert.match(
      ok(await cluster.skiff(['get', 'ds', 'node-agent']), 'get ds').stdout,
      /^node-agent\s+2\s+2\s+2\s+2\s+2\s/m,
    );

    // the rolling update, sampled: never fewer than replicas - maxUnavailable ready
    const api = connectCluster(cluster);
    let fewestReady = Infinity;
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        const { items } = await api.list('Pod', { namespace: 'default', labelSelector: 'app=shop' });
        const ready = (items as Pod[]).filter(
          (p) =>
            !p.metadata.deletionTimestamp &&
            p.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True'),
        ).length;
        fewestReady = Math.min(fewestReady, ready);
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    })();
    try {
      ok(await cluster.skiff(['set', 'image', 'deployment/shop', 'c=web:2']), 'set image');
      ok(
        await cluster.skiff(['rollout', 'status', 'deployment/shop', '--timeout', '120s'], {
          timeoutMs: 130_000,
        }),
        'rollout status',
      );
    } finally {
      sampling = false;
      await sampler;
      api.close();
    }
    assert.ok(fewestReady >= 3, `at least 3 of 4 ready throughout the rollout (fewest seen: ${fewestReady})`);
    // the old pods finish terminating (grace 1 s)
    await eventually('four pods of web:2 and nothing else', async () => {
      const images = ok(
        await cluster.skiff([
          'get',
          'pods',
          '-l',
          'app=shop',
          '-o',
          'jsonpath={.items[*].spec.containers[0].image}',
        ]),
        'images',
      ).stdout;
      return images.trim() === 'web:2 web:2 web:2 web:2';
    });

    const node = nodes[0]!;
    const drained = ok(
      await cluster.skiff(['drain', node, '--ignore-daemonsets', '--grace-period', '1', '--timeout', '90s'], {
        timeoutMs: 100_000,
      }),
      'drain --ignore-daemonsets',
    );
    assert.match(drained.stdout, new RegExp(`node/${node} drained`));
    const left = ok(await cluster.skiff(['get', 'pods', '-o', 'wide']), 'get pods').stdout;
    assert.match(
      left,
      new RegExp(`^node-agent-\\S+\\s+1/1\\s+Running\\s.*\\s${node}\\s`, 'm'),
      'the daemon stays on the drained node',
    );
    assert.doesNotMatch(
      left,
      new RegExp(`^shop-\\S+\\s.*\\s${node}\\s`, 'm'),
      'the Deployment’s pods moved off it',
    );
    ok(await cluster.skiff(['uncordon', node]), 'uncordon');
    ok(await cluster.skiff(['delete', 'deployment', 'shop']), 'delete deployment');
    ok(await cluster.skiff(['delete', 'ds', 'node-agent']), 'delete ds');
  });

  test('down stops the agents and leaves no container process behind', async () => {
    ok(await cluster.down(), 'down');
    for (const pid of agentPids) assert.ok(!pidRunning(pid), `agent ${pid} stopped`);
    const leftovers = readFileSync('/proc/self/mountinfo', 'utf8')
      .split('\n')
      .filter((line) => line.includes(cluster.stateDir));
    assert.deepEqual(leftovers, [], 'no mount under the state dir is left');
    const namespaces = execFileSync('ip', ['netns', 'list']).toString();
    for (const netns of netnsNames) assert.ok(!namespaces.includes(netns), `${netns} removed`);
  });
});
