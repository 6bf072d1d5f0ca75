/**
 * The watch cache (issue 8), against the control plane as its own process on one etcd:
 *
 * 1. List of `--pods` pods: a consistent list (read from etcd) and a resourceVersion=0 list (from
 *    the watch cache), alternated for `--rounds` rounds; medians and their ratio (goal ≤ 0.2), as
 *    the client sees them (its decoding of every object included) and inside the control plane
 *    (its request-duration histogram: handler and reply encoding).
 * 2. `--watchers` watches on pods through the API, half of them with `fieldSelector
 *    spec.nodeName=<node>` (one of `--nodes`), opened from one list's resourceVersion over
 *    `--connections` client connections (a light client that reads only each event's type, name and
 *    resourceVersion: full decoding by 1,000 clients on 2 cores measured the clients, not the
 *    control plane), while `--creates` pods are created: every watcher must get exactly the pods it
 *    should, in revision order. Reported: delivery latency (from the
 *    start of a pod's create call to its arrival at a watcher) p50/p99 (goal p99 < 100 ms), the
 *    control plane's and etcd's CPU during the phase, and etcd's own count of watchers
 *    (etcd_debugging_mvcc_watcher_total) before and after the watches opened.
 *
 *   node dist/test/bench/watch-cache.js [--pods 10000] [--rounds 5] [--watchers 1000] [--nodes 50]
 *                                       [--creates 5000] [--rate 100] [--connections 10]
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import * as grpc from '@grpc/grpc-js';
import protobuf from 'protobufjs';
import { connectApi, type ApiClient } from '../../proto/client.js';
import { serializerFor } from '../../proto/grpc-service.js';
import { kindInfoOf } from '../../proto/kinds.js';
import { schemaRoot } from '../../proto/schema.js';
import { benchPod, cpuSeconds, createPods, percentile, rssMiB, startBenchCluster } from './api-create.js';

const LIST_NAMESPACE = 'bench-list';
const WATCH_NAMESPACE = 'bench-watch';

function median(values: number[]): number {
  return percentile(
    [...values].sort((a, b) => a - b),
    0.5,
  );
}

/** The control plane's own time in List calls of pods so far (its request-duration histogram). */
async function serverListSeconds(httpAddress: string): Promise<number> {
  const metrics = await (await fetch(`http://${httpAddress}/metrics`)).text();
  const line = metrics
    .split('\n')
    .find(
      (l) =>
        l.startsWith('skiff_api_request_duration_seconds_sum{') &&
        /method="List"/.test(l) &&
        /kind="Pod"/.test(l),
    );
  return line === undefined ? 0 : Number(line.slice(line.lastIndexOf(' ') + 1));
}

/** The control plane's GC seconds so far (prom-client's default metrics), by kind. */
async function gcSeconds(httpAddress: string): Promise<Record<string, number>> {
  const metrics = await (await fetch(`http://${httpAddress}/metrics`)).text();
  const seconds: Record<string, number> = {};
  for (const match of metrics.matchAll(/^nodejs_gc_duration_seconds_sum\{kind="(\w+)"\} ([\d.e+-]+)$/gm))
    seconds[match[1]!] = Number(match[2]);
  return seconds;
}

async function etcdWatchers(endpoint: string): Promise<number> {
  const metrics = await (await fetch(`${endpoint}/metrics`)).text();
  return Number(/^etcd_debugging_mvcc_watcher_total (\d+)$/m.exec(metrics)?.[1] ?? NaN);
}

/**
 * A watch client as light as the measurement needs: the typed client decodes every object in full,
 * and 1,000 of them decoding 2.5 million events on this machine's 2 cores were the bottleneck, not
 * the control plane. This one reads only each event's type and the object's name and
 * resourceVersion from the wire bytes.
 */
function lightWatchClient(server: string, token: string) {
  const root = schemaRoot();
  const field = (message: string, name: string): number =>
    root.lookupType(`skiff.v1.${message}`).fields[name]!.id;
  const ids = {
    type: field('WatchEvent', 'type'),
    object: field('WatchEvent', 'object'),
    pod: field('Object', kindInfoOf('Pod').envelopeField),
    metadata: field('Pod', 'metadata'),
    name: field('ObjectMeta', 'name'),
    resourceVersion: field('ObjectMeta', 'resourceVersion'),
  };
  /** Finds field `id` (length-delimited) in `bytes`, returns its contents. */
  const find = (bytes: Uint8Array, id: number): Uint8Array | undefined => {
    const reader = protobuf.Reader.create(bytes);
    while (reader.pos < reader.len) {
      const tag = reader.uint32();
      if (tag >>> 3 === id && (tag & 7) === 2) return reader.bytes();
      reader.skipType(tag & 7);
    }
    return undefined;
  };
  const text = (bytes: Uint8Array | undefined): string => (bytes ? Buffer.from(bytes).toString('utf8') : '');
  type LightEvent = { type: string; name: string; resourceVersion: string };
  const Client = grpc.makeGenericClientConstructor(
    {
      Watch: {
        path: '/skiff.v1.Api/Watch',
        requestStream: false,
        responseStream: true,
        requestSerialize: serializerFor(root.lookupType('skiff.v1.WatchRequest')),
        requestDeserialize: (bytes: Buffer) => bytes,
        responseSerialize: (value: Buffer) => value,
        responseDeserialize: (bytes: Buffer): LightEvent => {
          const meta = find(
            find(find(bytes, ids.object) ?? new Uint8Array(), ids.pod) ?? new Uint8Array(),
            ids.metadata,
          );
          return {
            type: text(find(bytes, ids.type)),
            name: text(meta && find(meta, ids.name)),
            resourceVersion: text(meta && find(meta, ids.resourceVersion)),
          };
        },
      },
    },
    'Api',
  );
  const client = new Client(server, grpc.credentials.createInsecure(), { 'grpc.enable_channelz': 0 });
  const metadata = new grpc.Metadata();
  metadata.set('authorization', `Bearer ${token}`);
  return {
    watch(
      request: Record<string, unknown>,
      onEvent: (event: LightEvent) => void,
      signal: AbortSignal,
    ): Promise<void> {
      return new Promise((resolve) => {
        const call = (
          client as unknown as Record<
            string,
            (req: unknown, md: grpc.Metadata) => grpc.ClientReadableStream<LightEvent>
          >
        )['Watch']!(request, metadata);
        call.on('data', onEvent);
        call.on('error', () => resolve());
        call.on('end', () => resolve());
        signal.addEventListener('abort', () => call.cancel(), { once: true });
      });
    },
    close: () => client.close(),
  };
}

interface Watcher {
  node?: string;
  received: { name: string; at: number; resourceVersion: bigint }[];
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      pods: { type: 'string', default: '10000' },
      rounds: { type: 'string', default: '5' },
      watchers: { type: 'string', default: '1000' },
      nodes: { type: 'string', default: '50' },
      creates: { type: 'string', default: '5000' },
      connections: { type: 'string', default: '10' },
      rate: { type: 'string', default: '100' },
    },
  });
  const [pods, rounds, watcherCount, nodes, creates, connections, rate] = [
    values.pods,
    values.rounds,
    values.watchers,
    values.nodes,
    values.creates,
    values.connections,
    values.rate,
  ].map(Number) as [number, number, number, number, number, number, number];
  const out = (line: string): boolean => process.stdout.write(`${line}\n`);
  const dir = mkdtempSync(join(tmpdir(), 'skiff-bench-watch-'));
  const cleanups: Array<() => Promise<void> | void> = [() => rmSync(dir, { recursive: true, force: true })];
  try {
    const {
      etcd,
      controlPlane: child,
      apiAddress,
      httpAddress,
      token,
    } = await startBenchCluster(dir, cleanups, {
      extraArgs: ['--max-watches-per-token', String(watcherCount + 10)],
    });
    const clients: ApiClient[] = Array.from({ length: connections }, () =>
      connectApi({ server: apiAddress, token, timeoutMs: 120_000 }),
    );
    cleanups.push(() => clients.forEach((client) => client.close()));
    const watchClients = Array.from({ length: connections }, () => lightWatchClient(apiAddress, token));
    cleanups.push(() => watchClients.forEach((client) => client.close()));
    const admin = clients[0]!;
    for (const name of [LIST_NAMESPACE, WATCH_NAMESPACE])
      await admin.create({ apiVersion: 'v1', kind: 'Namespace', metadata: { name }, spec: {} });

    // 1. lists
    await createPods(admin, 64, 'fill', { total: pods, namespace: LIST_NAMESPACE });
    const fromEtcd: number[] = [];
    const fromCache: number[] = [];
    const serverEtcd: number[] = [];
    const serverCache: number[] = [];
    for (let round = 0; round < rounds + 1; round++) {
      let server = await serverListSeconds(httpAddress);
      let start = performance.now();
      const consistent = await admin.list('Pod', { namespace: LIST_NAMESPACE });
      const etcdMs = performance.now() - start;
      const etcdServerMs = ((await serverListSeconds(httpAddress)) - server) * 1000;
      server = await serverListSeconds(httpAddress);
      start = performance.now();
      const cached = await admin.list('Pod', { namespace: LIST_NAMESPACE, resourceVersion: '0' });
      const cacheMs = performance.now() - start;
      const cacheServerMs = ((await serverListSeconds(httpAddress)) - server) * 1000;
      if (consistent.items.length !== pods || cached.items.length !== pods)
        throw new Error(`listed ${consistent.items.length} and ${cached.items.length} pods, not ${pods}`);
      if (round === 0) continue; // warm-up
      fromEtcd.push(etcdMs);
      fromCache.push(cacheMs);
      serverEtcd.push(etcdServerMs);
      serverCache.push(cacheServerMs);
    }
    out(`list of ${pods} pods through the API, ${rounds} rounds alternated (after one warm-up):`);
    out(
      `  consistent (etcd):           median ${median(fromEtcd).toFixed(0)} ms (${fromEtcd.map((ms) => ms.toFixed(0)).join(' ')})`,
    );
    out(
      `  resourceVersion=0 (cache):   median ${median(fromCache).toFixed(0)} ms (${fromCache.map((ms) => ms.toFixed(0)).join(' ')})`,
    );
    out(
      `  ratio cache / etcd, as the client sees it: ${(median(fromCache) / median(fromEtcd)).toFixed(2)} (goal <= 0.20)`,
    );
    out(
      `  in the control plane (its List call, the reply encoded): etcd ${median(serverEtcd).toFixed(0)} ms, cache ${median(serverCache).toFixed(0)} ms, ratio ${(median(serverCache) / median(serverEtcd)).toFixed(2)}`,
    );

    // 2. watchers
    const etcdWatchersBefore = await etcdWatchers(etcd.endpoint);
    const start = (await admin.list('Pod', { namespace: WATCH_NAMESPACE })).resourceVersion;
    const controller = new AbortController();
    // pod n goes to node n % nodes; each filtered watcher follows one node
    const nodeOf = (n: number): string => `node-${n % nodes}`;
    const podsOfNode = new Map<string, Set<string>>();
    for (let n = 0; n < creates; n++) {
      if (!podsOfNode.has(nodeOf(n))) podsOfNode.set(nodeOf(n), new Set());
      podsOfNode.get(nodeOf(n))!.add(`w-${n}`);
    }
    const watchers: Watcher[] = Array.from({ length: watcherCount }, (_, i) =>
      i % 2 === 0 ? { received: [] } : { node: nodeOf((i - 1) / 2), received: [] },
    );
    const expected = (watcher: Watcher): number =>
      watcher.node === undefined ? creates : (podsOfNode.get(watcher.node)?.size ?? 0);
    let complete = 0;
    let allIn!: () => void;
    const allReceived = new Promise<void>((resolve) => (allIn = resolve));
    const runs = watchers.map((watcher, i) =>
      watchClients[i % connections]!.watch(
        {
          kind: 'Pod',
          namespace: WATCH_NAMESPACE,
          resourceVersion: start,
          ...(watcher.node ? { fieldSelector: `spec.nodeName=${watcher.node}` } : {}),
        },
        (event) => {
          if (event.type !== 'ADDED') return;
          watcher.received.push({
            name: event.name,
            at: performance.now(),
            resourceVersion: BigInt(event.resourceVersion),
          });
          if (watcher.received.length === expected(watcher) && ++complete === watchers.length) allIn();
        },
        controller.signal,
      ),
    );
    // let every watch reach the control plane before the first create
    await new Promise((resolve) => setTimeout(resolve, 2000));
    const etcdWatchersOpen = await etcdWatchers(etcd.endpoint);
    const createdAt = new Map<string, number>();
    const cpuBefore = {
      controlPlane: cpuSeconds(child.pid!),
      etcd: cpuSeconds(etcd.pid),
      bench: cpuSeconds(process.pid),
    };
    const gcBefore = await gcSeconds(httpAddress);
    const began = performance.now();
    let next = 0;
    await Promise.all(
      Array.from({ length: 32 }, async () => {
        for (let n = next++; n < creates; n = next++) {
          // paced: pod n is due at n / rate seconds (a latency goal means something below saturation)
          const due = began + (n * 1000) / rate;
          if (due > performance.now())
            await new Promise((resolve) => setTimeout(resolve, due - performance.now()));
          const name = `w-${n}`;
          createdAt.set(name, performance.now());
          const pod = benchPod(name, WATCH_NAMESPACE);
          pod.spec.nodeName = nodeOf(n);
          await admin.create(pod);
        }
      }),
    );
    const createSeconds = (performance.now() - began) / 1000;
    const timeout = setTimeout(() => allIn(), 300_000);
    await allReceived;
    clearTimeout(timeout);
    const deliverSeconds = (performance.now() - began) / 1000;
    const cpu = {
      controlPlane: cpuSeconds(child.pid!) - cpuBefore.controlPlane,
      etcd: cpuSeconds(etcd.pid) - cpuBefore.etcd,
      bench: cpuSeconds(process.pid) - cpuBefore.bench,
    };
    const gcAfter = await gcSeconds(httpAddress);
    const gc = Object.keys(gcAfter)
      .map((kind) => `${kind} ${(gcAfter[kind]! - (gcBefore[kind] ?? 0)).toFixed(1)}`)
      .join(', ');
    controller.abort();
    await Promise.allSettled(runs);

    // every watcher: exactly its pods, in revision order (grouped creates share a revision)
    let wrong = 0;
    const latencies: number[] = [];
    for (const watcher of watchers) {
      const names = watcher.received.map((r) => r.name);
      const want = watcher.node === undefined ? creates : (podsOfNode.get(watcher.node)?.size ?? 0);
      const inOrder = watcher.received.every(
        (r, i) => i === 0 || r.resourceVersion >= watcher.received[i - 1]!.resourceVersion,
      );
      const right =
        watcher.node === undefined
          ? new Set(names).size === creates
          : names.every((name) => podsOfNode.get(watcher.node!)!.has(name));
      if (names.length !== want || !inOrder || !right) wrong++;
      for (const r of watcher.received) latencies.push(r.at - createdAt.get(r.name)!);
    }
    latencies.sort((a, b) => a - b);
    out(
      `${watcherCount} watchers on pods (${Math.ceil(watcherCount / 2)} all, ${Math.floor(watcherCount / 2)} by spec.nodeName over ${nodes} nodes), ${connections} client connections, ${creates} pods created at ${rate}/s (32 in flight at most):`,
    );
    out(
      `  etcd watchers: ${etcdWatchersBefore} before, ${etcdWatchersOpen} with the ${watcherCount} API watches open`,
    );
    out(`  watchers with a wrong, missing or out-of-order event: ${wrong} of ${watcherCount}`);
    out(
      `  events delivered: ${latencies.length}; created in ${createSeconds.toFixed(1)} s, all delivered after ${deliverSeconds.toFixed(1)} s`,
    );
    out(
      `  delivery latency: p50 ${percentile(latencies, 0.5).toFixed(0)} ms, p99 ${percentile(latencies, 0.99).toFixed(0)} ms, max ${(latencies.at(-1) ?? 0).toFixed(0)} ms (goal p99 < 100 ms)`,
    );
    out(`  control-plane GC seconds during the phase: ${gc}`);
    out(
      `  CPU seconds during the phase: control plane ${cpu.controlPlane.toFixed(1)}, etcd ${cpu.etcd.toFixed(1)}, this benchmark (the clients) ${cpu.bench.toFixed(1)}; control-plane RSS ${rssMiB(child.pid!).toFixed(0)} MiB`,
    );
  } finally {
    for (const cleanup of cleanups.reverse()) await cleanup();
  }
}

await main();
