/**
 * The Service data plane at scale (issue 14): `--services` Services (default 10,000) of
 * `--endpoints` endpoints each (default 5), every tenth a NodePort, programmed by a ServiceProxy
 * into the table `inet skiff` of a network namespace this bench makes (never the machine's own).
 * The proxy is fed by real informers over an in-memory store (the API's cost is its own bench's).
 *
 * Reported:
 * 1. the full write at start (plan + nft -f), its script size, and the rule count;
 * 2. one endpoint's readiness flipped `--changes` times (default 100): from the informer event to
 *    `nft -f` done, p50 / p99, and each write's script size;
 * 3. beside them, measured in the same run, what a non-incremental proxier pays per change: the
 *    same Services as one full nft rewrite, and (when iptables-restore is installed) as kube-proxy's
 *    iptables-mode ruleset restored whole; each as a ratio to the incremental change's p50.
 *
 *   node dist/test/bench/service-proxy.js [--services 10000] [--endpoints 5] [--changes 100]
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { parseArgs } from 'node:util';
import type { EndpointSlice, Service } from '../../proto/gen/types.js';
import { Informer } from '../../proto/informer/informer.js';
import { encodeObject } from '../../proto/objects.js';
import { MemoryStore } from '../../controlplane/store/memory-store.js';
import { rootLogger } from '../../proto/support/logger.js';
import { storeServiceInformers } from '../harness/store-service-informers.js';
import { commandNetExec } from '../../node-agent/runtime/net/net-exec.js';
import { nodeTableScript } from '../../node-agent/runtime/net/nft-ruleset.js';
import { ServiceProxy } from '../../node-agent/proxy/service-proxy.js';
import { planService } from '../../node-agent/proxy/service-plan.js';
import { EMPTY_TABLE, fullScript, gatherTable } from '../../node-agent/proxy/service-table.js';
import { parseCidr } from '../../proto/cidr.js';

const { values: args } = parseArgs({
  options: {
    services: { type: 'string', default: '10000' },
    endpoints: { type: 'string', default: '5' },
    changes: { type: 'string', default: '100' },
  },
});
const SERVICES = Number(args.services);
const ENDPOINTS = Number(args.endpoints);
const CHANGES = Number(args.changes);
const NETNS = `skiff-svcbench-${process.pid}`;
const NETNS_PATH = `/run/netns/${NETNS}`;
const NODE = 'bench-node';

function ipOf(n: number, base: number): string {
  return `${base >>> 24}.${(base >>> 16) & 255}.${((base + n) >>> 8) & 255}.${(base + n) & 255}`;
}
const SERVICE_BASE = (10 << 24) | (96 << 16); // 10.96.0.0
const POD_BASE = (10 << 24) | (244 << 16); // 10.244.0.0

function serviceOf(i: number): Service {
  const nodePort = i % 10 === 0 ? 30000 + i / 10 : undefined;
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { namespace: 'bench', name: `svc-${i}` },
    spec: {
      type: nodePort ? 'NodePort' : 'ClusterIP',
      clusterIP: ipOf(i + 1, SERVICE_BASE),
      ports: [{ name: 'http', port: 80, protocol: 'TCP', ...(nodePort ? { nodePort } : {}) }],
    },
  };
}

function sliceOf(i: number, notReady = -1): EndpointSlice {
  return {
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: {
      namespace: 'bench',
      name: `svc-${i}-1`,
      labels: { 'kubernetes.io/service-name': `svc-${i}` },
    },
    addressType: 'IPv4',
    ports: [{ name: 'http', port: 8080, protocol: 'TCP' }],
    endpoints: Array.from({ length: ENDPOINTS }, (_, e) => ({
      addresses: [ipOf(i * ENDPOINTS + e + 2, POD_BASE)],
      nodeName: e === 0 ? NODE : 'other',
      conditions: { ready: e !== notReady, serving: e !== notReady, terminating: false },
    })),
  };
}

const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)]!;
};

/** kube-proxy's iptables-mode nat ruleset for the same Services, as iptables-restore reads it. */
function iptablesRuleset(): string {
  const chains: string[] = [':KUBE-SERVICES - [0:0]', ':KUBE-MARK-MASQ - [0:0]', ':KUBE-NODEPORTS - [0:0]'];
  const rules: string[] = ['-A KUBE-MARK-MASQ -j MARK --set-xmark 0x4000/0x4000'];
  for (let i = 0; i < SERVICES; i++) {
    const svc = `KUBE-SVC-${i.toString(16).padStart(12, '0').toUpperCase()}`;
    chains.push(`:${svc} - [0:0]`);
    rules.push(`-A KUBE-SERVICES -d ${ipOf(i + 1, SERVICE_BASE)}/32 -p tcp --dport 80 -j ${svc}`);
    rules.push(
      `-A ${svc} -d ${ipOf(i + 1, SERVICE_BASE)}/32 -p tcp --dport 80 ! -s 10.244.0.0/16 -j KUBE-MARK-MASQ`,
    );
    if (i % 10 === 0) rules.push(`-A KUBE-NODEPORTS -p tcp --dport ${30000 + i / 10} -j ${svc}`);
    for (let e = 0; e < ENDPOINTS; e++) {
      const sep = `KUBE-SEP-${(i * ENDPOINTS + e).toString(16).padStart(12, '0').toUpperCase()}`;
      const ip = ipOf(i * ENDPOINTS + e + 2, POD_BASE);
      chains.push(`:${sep} - [0:0]`);
      const left = ENDPOINTS - e;
      rules.push(
        left > 1
          ? `-A ${svc} -m statistic --mode random --probability ${(1 / left).toFixed(11)} -j ${sep}`
          : `-A ${svc} -j ${sep}`,
      );
      rules.push(`-A ${sep} -s ${ip}/32 -j KUBE-MARK-MASQ`);
      rules.push(`-A ${sep} -p tcp -m tcp -j DNAT --to-destination ${ip}:8080`);
    }
  }
  rules.push('-A KUBE-SERVICES -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS');
  return ['*nat', ...chains, ...rules, 'COMMIT', ''].join('\n');
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('the bench needs root (a network namespace, nftables)');
  execFileSync('ip', ['netns', 'add', NETNS]);
  const informers: Informer<unknown>[] = [];
  let proxy: ServiceProxy | undefined;
  try {
    await commandNetExec.nft(
      NETNS_PATH,
      nodeTableScript({ bridge: 'skiff0', podCIDR: '10.244.0.0/24', clusterCIDR: '10.244.0.0/16' }, []),
    );
    const log = rootLogger.child({ component: 'bench' });
    log.level = 'warn';
    const store = new MemoryStore();
    for (let i = 0; i < SERVICES; i++) {
      await store.create(
        { resource: 'services', namespace: 'bench', name: `svc-${i}` },
        encodeObject(serviceOf(i)),
      );
      await store.create(
        { resource: 'endpointslices', namespace: 'bench', name: `svc-${i}-1` },
        encodeObject(sliceOf(i)),
      );
    }
    const shared = storeServiceInformers(store, log);
    informers.push(shared.services as Informer<unknown>, shared.endpointSlices as Informer<unknown>);
    shared.services.start();
    shared.endpointSlices.start();
    proxy = new ServiceProxy({
      informers: shared,
      nodeName: NODE,
      clusterCIDR: '10.244.0.0/16',
      hostNetns: NETNS_PATH,
      log,
    });
    const t0 = performance.now();
    await proxy.start();
    const startMs = performance.now() - t0;
    const first = proxy.lastWrite!;
    const rules = Number(
      spawnSync(
        'sh',
        [
          '-c',
          `ip netns exec ${NETNS} nft list table inet skiff | grep -c -E '^\\s+(ip|meta|numgen|jump|goto|update|drop|fib)'`,
        ],
        {
          encoding: 'utf8',
        },
      ).stdout.trim(),
    );
    console.log(
      `full write at start: ${startMs.toFixed(0)} ms from informers started (plan ${first.planMs.toFixed(0)} ms + nft ${first.nftMs.toFixed(0)} ms), script ${(first.scriptBytes / 1e6).toFixed(1)} MB, ${rules} rules in the table`,
    );

    const latencies: number[] = [];
    const sizes: number[] = [];
    const notReady = new Map<number, number>();
    for (let c = 0; c < CHANGES; c++) {
      const i = (c * 7919) % SERVICES;
      // a flip every time: one endpoint not ready, or all ready again
      const next = notReady.has(i) ? -1 : 1 + (c % (ENDPOINTS - 1));
      if (next < 0) notReady.delete(i);
      else notReady.set(i, next);
      const before = proxy.lastWrite!.at;
      const key = { resource: 'endpointslices', namespace: 'bench', name: `svc-${i}-1` };
      const current = await store.get(key);
      const t = performance.now();
      await store.update(key, encodeObject(sliceOf(i, next)), current.modRevision);
      while (proxy.lastWrite!.at === before) {
        if (performance.now() - t > 10_000) throw new Error(`change ${c} (svc-${i}) not written within 10 s`);
        await new Promise((r) => setTimeout(r, 1));
      }
      latencies.push(proxy.lastWrite!.at - t);
      sizes.push(proxy.lastWrite!.scriptBytes);
      await new Promise((r) => setTimeout(r, 20));
    }
    const p50 = pct(latencies, 50);
    console.log(
      `one endpoint change, event → nft applied (includes the 50 ms batch wait): p50 ${p50.toFixed(1)} ms, p99 ${pct(latencies, 99).toFixed(1)} ms, max ${Math.max(...latencies).toFixed(1)} ms; script p50 ${pct(sizes, 50)} bytes`,
    );

    // what a proxier that rewrites everything pays for the same change
    const node = { nodeName: NODE, clusterCIDR: parseCidr('10.244.0.0/16') };
    const plans = new Map(
      Array.from({ length: SERVICES }, (_, i) => [
        `bench/svc-${i}`,
        planService(serviceOf(i), [sliceOf(i)], node),
      ]),
    );
    const whole = fullScript(EMPTY_TABLE, gatherTable(plans).table);
    const tFull = performance.now();
    await commandNetExec.nft(NETNS_PATH, whole);
    const fullMs = performance.now() - tFull;
    console.log(
      `reference, the same Services as one full nft rewrite: ${fullMs.toFixed(0)} ms (${(fullMs / p50).toFixed(0)}× the incremental change's p50)`,
    );
    if (existsSync('/usr/sbin/iptables-restore')) {
      const ruleset = iptablesRuleset();
      const tIpt = performance.now();
      const ran = spawnSync('ip', ['netns', 'exec', NETNS, 'iptables-restore', '-w'], {
        input: ruleset,
        encoding: 'utf8',
      });
      const iptMs = performance.now() - tIpt;
      if (ran.status !== 0)
        console.log(`iptables-restore failed: ${ran.stderr.trim().split('\n').slice(-2).join('; ')}`);
      else
        console.log(
          `reference, kube-proxy's iptables ruleset for them (${ruleset.split('\n').length} lines) restored whole: ${iptMs.toFixed(0)} ms (${(iptMs / p50).toFixed(0)}× the incremental change's p50)`,
        );
    } else console.log('reference iptables-restore: not installed (apt-get install -y iptables)');
  } finally {
    await proxy?.stop();
    for (const inf of informers) await inf.stop();
    execFileSync('ip', ['netns', 'del', NETNS]);
  }
}

await main();
