/**
 * The watch cache (issue 8), against the control plane as its own process on one etcd:
 *
 * 1. List of `--pods` pods: a consistent list (read from etcd) and a resourceVersion=0 list (from
 *    the watch cache), alternated for `--rounds` rounds; medians and their ratio (goal ≤ 0.2), as
 *    the client sees them (its decoding of every object included) and inside the control plane
 *    (its request-duration histogram: handler and reply encoding).
 * 2. `--watchers` watches on pods through the API, half of them with `fieldSelector
 *    spec.nodeName=<node>` (one of `--nodes`), opened from one list's resourceVersion, while
 *    `--creates` pods are created at `--rate` a second: every watcher must get exactly the pods it
 *    should, in revision order. The watchers are real gRPC streams over TCP, read by a light client
 *    (HTTP/2 from node:http2, reading only each event's type, name and resourceVersion: grpc-js's
 *    client and full decoding by 1,000 clients on 2 cores measured the clients, not the control
 *    plane) over `--connections`
 *    connections whose HTTP/2 flow-control window is `--client-window` bytes: grpc-js's default,
 *    64 KiB per connection, shared by the ~100 streams of one connection here, holds the control
 *    plane's writes back whenever the client is slow to take them, and the watchers fell minutes
 *    behind. They run in this process (which also creates the pods), or with `--clients N` in N
 *    processes of their own, as agents are: on an idle 2-core machine those cost more CPU than they
 *    save, but with other work on the machine one client process falls behind where N keep up.
 *    Reported: delivery latency (from the start of a pod's create call to its arrival at a watcher)
 *    p50/p99 (goal p99 < 100 ms), split into each pod's first delivery (the create path) and the
 *    rest behind it (the fan-out); event-loop delay of the control plane and of the clients; etcd's
 *    WAL fsyncs; CPU of each process, and what the rest of the machine used meanwhile (on a shared
 *    machine the figures mean little without it); etcd's own count of watchers
 *    (etcd_debugging_mvcc_watcher_total) before and after the watches opened.
 *
 *   node dist/test/bench/watch-cache.js [--pods 10000] [--rounds 5] [--watchers 1000] [--nodes 50]
 *                                       [--creates 5000] [--rate 100] [--clients 0] [--connections 10]
 *                                       [--client-window 1048576] [--profile DIR]
 */
import { fork } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay, type Histogram } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import * as http2 from 'node:http2';
import { connectApi } from '../../proto/client.js';
import { messages, type MessageName } from '../../proto/gen/messages.js';
import { kindInfoOf } from '../../proto/kinds.js';
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

/** etcd's WAL fsync histogram so far (cumulative counts by upper bound, seconds). */
async function etcdFsyncs(endpoint: string): Promise<Map<number, number>> {
  const metrics = await (await fetch(`${endpoint}/metrics`)).text();
  const buckets = new Map<number, number>();
  for (const match of metrics.matchAll(
    /^etcd_disk_wal_fsync_duration_seconds_bucket\{le="([^"]+)"\} (\d+)$/gm,
  ))
    buckets.set(match[1] === '+Inf' ? Infinity : Number(match[1]), Number(match[2]));
  return buckets;
}

/** The fsyncs between two etcdFsyncs readings: how many, and the bound under which 99% and all fell. */
function fsyncSummary(before: Map<number, number>, after: Map<number, number>): string {
  const bounds = [...after.keys()].sort((a, b) => a - b);
  const count = (after.get(Infinity) ?? 0) - (before.get(Infinity) ?? 0);
  const under = (q: number): string => {
    const bound = bounds.find((le) => (after.get(le) ?? 0) - (before.get(le) ?? 0) >= q * count);
    return bound === undefined || bound === Infinity ? 'more' : `${(bound * 1000).toFixed(0)} ms`;
  };
  return `${count} WAL fsyncs, 99% within ${under(0.99)}, all within ${under(1)}`;
}

async function etcdWatchers(endpoint: string): Promise<number> {
  const metrics = await (await fetch(`${endpoint}/metrics`)).text();
  return Number(/^etcd_debugging_mvcc_watcher_total (\d+)$/m.exec(metrics)?.[1] ?? NaN);
}

/**
 * A watch client as light as the measurement needs: the typed client decodes every object in full,
 * and 1,000 of them decoding 2.5 million events on this machine's 2 cores were the bottleneck, not
 * the control plane; grpc-js's client alone, reading each message through its filters, used more
 * CPU than the control plane sending it. This one speaks gRPC's wire format over node:http2 (a
 * POST with the framed request; length-prefixed messages back) and reads only each event's type
 * and the object's name and resourceVersion from the wire bytes.
 */
function lightWatchClient(server: string, token: string, windowBytes: number, ca: string) {
  const field = (message: MessageName, name: string): number => messages[message].field(name)!.id;
  const ids = {
    type: field('WatchEvent', 'type'),
    object: field('WatchEvent', 'object'),
    pod: field('Object', kindInfoOf('Pod').envelopeField),
    metadata: field('Pod', 'metadata'),
    name: field('ObjectMeta', 'name'),
    resourceVersion: field('ObjectMeta', 'resourceVersion'),
  };
  /** The varint at `bytes[at]` (below 2^53); where it ends is left in varintEnd. */
  let varintEnd = 0;
  const varint = (bytes: Buffer, at: number): number => {
    let value = 0;
    for (let shift = 1; ; shift *= 128) {
      const byte = bytes[at++]!;
      value += (byte & 0x7f) * shift;
      if (byte < 0x80) break;
    }
    varintEnd = at;
    return value;
  };
  /**
   * Where the contents of length-delimited field `id` of the message in `bytes[start, end)` start
   * (they end at foundEnd), or -1 when it has none. Allocates nothing: a client process takes
   * thousands of events a second.
   */
  let foundEnd = 0;
  const find = (bytes: Buffer, start: number, end: number, id: number): number => {
    let at = start;
    while (at < end) {
      const tag = varint(bytes, at);
      at = varintEnd;
      switch (tag & 7) {
        case 0:
          varint(bytes, at);
          at = varintEnd;
          break;
        case 1:
          at += 8;
          break;
        case 5:
          at += 4;
          break;
        case 2: {
          const length = varint(bytes, at);
          at = varintEnd;
          if (tag >>> 3 === id) {
            foundEnd = at + length;
            return at;
          }
          at += length;
          break;
        }
        default:
          throw new Error(`watch event: unexpected wire type ${tag & 7}`);
      }
    }
    return -1;
  };
  const text = (bytes: Buffer, start: number, id: number, end: number): string => {
    const at = start < 0 ? -1 : find(bytes, start, end, id);
    return at < 0 ? '' : bytes.toString('utf8', at, foundEnd);
  };
  type LightEvent = { type: string; name: string; resourceVersion: string };
  const decode = (bytes: Buffer, start: number, end: number): LightEvent => {
    const type = text(bytes, start, ids.type, end);
    let at = find(bytes, start, end, ids.object);
    if (at >= 0) at = find(bytes, at, foundEnd, ids.pod);
    if (at >= 0) at = find(bytes, at, foundEnd, ids.metadata);
    const metaEnd = foundEnd;
    return {
      type,
      name: text(bytes, at, ids.name, metaEnd),
      resourceVersion: text(bytes, at, ids.resourceVersion, metaEnd),
    };
  };
  const encodeRequest = (request: Record<string, unknown>): Buffer => messages.WatchRequest.encode(request);
  const sessions: http2.ClientHttp2Session[] = [];
  const session = (): http2.ClientHttp2Session => {
    const opened = http2.connect(`https://${server}`, {
      ca,
      settings: { initialWindowSize: windowBytes },
    });
    // the connection's own window (the stream's is the setting above)
    opened.on('connect', () => opened.setLocalWindowSize(windowBytes));
    opened.on('error', () => undefined);
    sessions.push(opened);
    return opened;
  };
  const connection = session();
  return {
    watch(
      request: Record<string, unknown>,
      onEvent: (event: LightEvent) => void,
      signal: AbortSignal,
      /** Called once the control plane has answered the watch. */
      onOpen: () => void,
    ): Promise<void> {
      return new Promise((resolve) => {
        const body = encodeRequest(request);
        const framed = Buffer.alloc(5 + body.length);
        framed.writeUInt32BE(body.length, 1);
        body.copy(framed, 5);
        const stream = connection.request({
          ':method': 'POST',
          ':path': '/skiff.v1.Api/Watch',
          'content-type': 'application/grpc',
          te: 'trailers',
          authorization: `Bearer ${token}`,
        });
        stream.end(framed);
        // answered: with headers, or ended at once (a refused watch: its watcher comes out wrong)
        let answered = false;
        const answer = (): void => {
          if (answered) return;
          answered = true;
          onOpen();
        };
        stream.once('response', answer);
        // gRPC messages (1 flag byte, 4 length bytes, the message) cut anywhere by DATA frames
        let pending: Buffer | undefined;
        stream.on('data', (chunk: Buffer) => {
          let bytes = pending === undefined ? chunk : Buffer.concat([pending, chunk]);
          pending = undefined;
          let at = 0;
          while (bytes.length - at >= 5) {
            const length = bytes.readUInt32BE(at + 1);
            if (bytes.length - at - 5 < length) break;
            onEvent(decode(bytes, at + 5, at + 5 + length));
            at += 5 + length;
          }
          if (at < bytes.length) pending = bytes.subarray(at);
        });
        const finish = (): void => {
          answer();
          resolve();
        };
        stream.on('error', finish);
        stream.on('close', finish);
        signal.addEventListener('abort', () => stream.close(http2.constants.NGHTTP2_CANCEL), { once: true });
      });
    },
    close: () => sessions.forEach((s) => s.close()),
  };
}

const nodeOf = (n: number, nodes: number): string => `node-${n % nodes}`;

/** Watcher i of the benchmark: even ones take every pod, odd ones the pods of one node. */
const nodeOfWatcher = (i: number, nodes: number): string | undefined =>
  i % 2 === 0 ? undefined : nodeOf((i - 1) / 2, nodes);

/** What one watch client (this process or a child) opens: its share of the watchers. */
interface WatchPlan {
  apiAddress: string;
  token: string;
  /** The cluster CA (PEM): the API speaks TLS. */
  ca: string;
  /** The resourceVersion every watch starts after (a list's). */
  start: string;
  creates: number;
  nodes: number;
  /** The benchmark's numbers of this client's watchers. */
  watchers: number[];
  connections: number;
  /** The HTTP/2 flow-control window of the client's connections (grpc-node.flow_control_window). */
  windowBytes: number;
}

interface WatchReport {
  /** Watchers with a wrong, missing or out-of-order event. */
  wrong: number;
  /** Per delivery: the pod's number and its arrival (ms since the epoch), in pairs. */
  deliveries: Float64Array;
  /** This client's event-loop delay while the pods were created: p99 and max, ms. */
  loopDelay: { p99: number; max: number };
}

/** ms since the epoch, sub-millisecond: comparable between the benchmark's processes. */
const wallClock = (): number => performance.timeOrigin + performance.now();

/** The sampling interval of the event-loop delay histograms (prom-client's default too). */
const LOOP_DELAY_RESOLUTION_MS = 10;

/** An event-loop delay histogram's p99 and max, ms (it records whole intervals: the delay is the excess). */
function loopDelayOf(histogram: Histogram): { p99: number; max: number } {
  const ms = (ns: number): number => Math.max(0, ns / 1e6 - LOOP_DELAY_RESOLUTION_MS);
  return { p99: ms(histogram.percentile(99)), max: ms(histogram.max) };
}

/**
 * Opens `plan`'s watches. `opened` resolves once the control plane has answered every one (its
 * headers, sent once the watch is registered), `complete` once every watcher has all its pods
 * (or `stop` was called); then `report()` checks each watcher and returns the arrivals.
 */
function startWatchers(plan: WatchPlan): {
  opened: Promise<void>;
  complete: Promise<void>;
  /** Starts the event-loop delay measurement (the create phase). */
  measure(): void;
  stop(): void;
  report(): Promise<WatchReport>;
} {
  const clients = Array.from({ length: plan.connections }, () =>
    lightWatchClient(plan.apiAddress, plan.token, plan.windowBytes, plan.ca),
  );
  const controller = new AbortController();
  const want = (node: string | undefined): Set<number> => {
    const pods = new Set<number>();
    for (let n = 0; n < plan.creates; n++)
      if (node === undefined || nodeOf(n, plan.nodes) === node) pods.add(n);
    return pods;
  };
  const everyPod = want(undefined);
  const wantOfNode = new Map<string, Set<number>>();
  const watchers = plan.watchers.map((i) => {
    const node = nodeOfWatcher(i, plan.nodes);
    if (node !== undefined && !wantOfNode.has(node)) wantOfNode.set(node, want(node));
    return {
      node,
      want: node === undefined ? everyPod : wantOfNode.get(node)!,
      pods: [] as number[],
      at: [] as number[],
      revisions: [] as bigint[],
    };
  });
  let open = 0;
  let done = 0;
  let markOpened!: () => void;
  let markComplete!: () => void;
  const opened = new Promise<void>((resolve) => (markOpened = resolve));
  const complete = new Promise<void>((resolve) => (markComplete = resolve));
  if (watchers.length === 0) {
    markOpened();
    markComplete();
  }
  const runs = watchers.map((watcher, i) =>
    clients[i % clients.length]!.watch(
      {
        kind: 'Pod',
        namespace: WATCH_NAMESPACE,
        resourceVersion: plan.start,
        ...(watcher.node ? { fieldSelector: `spec.nodeName=${watcher.node}` } : {}),
      },
      (event) => {
        if (event.type !== 'ADDED') return;
        watcher.at.push(wallClock());
        watcher.pods.push(Number(event.name.slice(2))); // "w-<n>"
        watcher.revisions.push(BigInt(event.resourceVersion));
        if (watcher.pods.length === watcher.want.size && ++done === watchers.length) markComplete();
      },
      controller.signal,
      () => {
        if (++open === watchers.length) markOpened();
      },
    ),
  );
  const loopDelay = monitorEventLoopDelay({ resolution: LOOP_DELAY_RESOLUTION_MS });
  return {
    opened,
    complete,
    measure: () => loopDelay.enable(),
    stop: markComplete,
    async report() {
      loopDelay.disable();
      controller.abort();
      await Promise.allSettled(runs);
      clients.forEach((client) => client.close());
      let wrong = 0;
      let count = 0;
      for (const watcher of watchers) count += watcher.pods.length;
      const deliveries = new Float64Array(count * 2);
      let k = 0;
      for (const watcher of watchers) {
        // exactly its pods, each once, in revision order (grouped creates share a revision)
        const inOrder = watcher.revisions.every((r, i) => i === 0 || r >= watcher.revisions[i - 1]!);
        const right =
          watcher.pods.length === watcher.want.size &&
          new Set(watcher.pods).size === watcher.want.size &&
          watcher.pods.every((n) => watcher.want.has(n));
        if (!inOrder || !right) wrong++;
        watcher.pods.forEach((n, i) => {
          deliveries[k++] = n;
          deliveries[k++] = watcher.at[i]!;
        });
      }
      return { wrong, deliveries, loopDelay: loopDelayOf(loopDelay) };
    },
  };
}

type ToChild = { plan: WatchPlan } | { measure: true } | { stop: true } | { report: true };
type FromChild = { opened: true } | { complete: true } | { report: WatchReport };

/** A watch client as its own process (this file with --watch-client), driven over IPC. */
function forkWatchers(plan: WatchPlan): ReturnType<typeof startWatchers> & { pid: number; kill(): void } {
  const child = fork(fileURLToPath(import.meta.url), ['--watch-client'], {
    serialization: 'advanced',
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const send = (message: ToChild): void => void child.send(message);
  const next = <K extends string>(key: K): Promise<Extract<FromChild, Record<K, unknown>>> =>
    new Promise((resolve, reject) => {
      const onMessage = (message: FromChild): void => {
        if (!(key in message)) return;
        child.off('message', onMessage);
        child.off('exit', onExit);
        resolve(message as Extract<FromChild, Record<K, unknown>>);
      };
      const onExit = (code: number | null): void => reject(new Error(`watch client exited (${code})`));
      child.on('message', onMessage);
      child.once('exit', onExit);
    });
  const opened = next('opened').then(() => undefined);
  const complete = next('complete').then(() => undefined);
  send({ plan });
  return {
    pid: child.pid!,
    opened,
    complete,
    measure: () => send({ measure: true }),
    stop: () => send({ stop: true }),
    async report() {
      const answer = next('report');
      send({ report: true });
      return (await answer).report;
    },
    kill: () => {
      if (child.exitCode === null) child.kill();
    },
  };
}

/** The child's side of forkWatchers. */
async function watchClientProcess(): Promise<void> {
  const plan = await new Promise<WatchPlan>((resolve) =>
    process.once('message', (message: ToChild) => 'plan' in message && resolve(message.plan)),
  );
  const watchers = startWatchers(plan);
  const send = (message: FromChild): void => void process.send!(message);
  process.on('message', (message: ToChild) => {
    if ('measure' in message) watchers.measure();
    else if ('stop' in message) watchers.stop();
    else if ('report' in message)
      // the channel closes once the report (tens of MB) is out
      void watchers.report().then((report) => process.send!({ report }, () => process.disconnect()));
  });
  void watchers.opened.then(() => send({ opened: true }));
  void watchers.complete.then(() => send({ complete: true }));
}

/** CPU seconds the whole machine has been busy so far (every core, /proc/stat), and its cores. */
function machineBusySeconds(): { busy: number; cores: number } {
  const lines = readFileSync('/proc/stat', 'utf8').split('\n');
  // user nice system idle iowait irq softirq steal: busy is all but idle and iowait
  const fields = lines[0]!.split(/\s+/).slice(1, 9).map(Number);
  const busy = fields.reduce((sum, n) => sum + n, 0) - fields[3]! - fields[4]!;
  return { busy: busy / 100, cores: lines.filter((line) => /^cpu\d/.test(line)).length };
}

/** The control plane's event-loop delay since the last scrape (prom-client resets it on each): ms. */
async function serverLoopDelay(httpAddress: string): Promise<{ p99: number; max: number }> {
  const metrics = await (await fetch(`http://${httpAddress}/metrics`)).text();
  const value = (name: string): number =>
    Math.max(
      0,
      Number(new RegExp(`^${name} ([\\d.e+-]+)$`, 'm').exec(metrics)?.[1] ?? NaN) * 1000 -
        LOOP_DELAY_RESOLUTION_MS,
    );
  return { p99: value('nodejs_eventloop_lag_p99_seconds'), max: value('nodejs_eventloop_lag_max_seconds') };
}

function quantiles(values: Float64Array): string {
  const sorted = Float64Array.from(values).sort();
  const at = (q: number): string =>
    (sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? 0).toFixed(0);
  return `p50 ${at(0.5)} ms, p99 ${at(0.99)} ms, max ${at(1)} ms`;
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
      clients: { type: 'string', default: '0' },
      'client-window': { type: 'string', default: String(1024 * 1024) },
      /** Write a CPU profile of the control plane into this directory. */
      profile: { type: 'string' },
    },
  });
  const [pods, rounds, watcherCount, nodes, creates, connections, rate, clientProcesses] = [
    values.pods,
    values.rounds,
    values.watchers,
    values.nodes,
    values.creates,
    values.connections,
    values.rate,
    values.clients,
  ].map(Number) as [number, number, number, number, number, number, number, number];
  const windowBytes = Number(values['client-window']);
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
      ca,
    } = await startBenchCluster(dir, cleanups, {
      extraArgs: ['--max-watches-per-token', String(watcherCount + 10)],
      ...(values.profile ? { nodeArgs: ['--cpu-prof', '--cpu-prof-dir', values.profile] } : {}),
    });
    const admin = connectApi({ server: apiAddress, token, tls: { ca }, timeoutMs: 120_000 });
    cleanups.push(() => admin.close());
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
    // watchers 2k and 2k+1 (one of each kind) belong to client k % processes, which spreads its own
    // over its share of the connections
    const processes = Math.max(clientProcesses, 1);
    const plans: WatchPlan[] = Array.from({ length: processes }, (_, c) => ({
      apiAddress,
      token,
      ca,
      start,
      creates,
      nodes,
      watchers: Array.from({ length: watcherCount }, (_, i) => i).filter(
        (i) => Math.floor(i / 2) % processes === c,
      ),
      connections: Math.max(1, Math.round(connections / processes)),
      windowBytes,
    }));
    const forked = clientProcesses > 0 ? plans.map(forkWatchers) : [];
    for (const client of forked) cleanups.push(() => client.kill());
    const groups = clientProcesses > 0 ? forked : [startWatchers(plans[0]!)];
    await Promise.all(groups.map((group) => group.opened));
    const etcdWatchersOpen = await etcdWatchers(etcd.endpoint);
    const createdAt = new Float64Array(creates);
    const pids = {
      controlPlane: child.pid!,
      etcd: etcd.pid,
      bench: process.pid,
      ...Object.fromEntries(forked.map((client, c) => [`client${c}`, client.pid])),
    };
    const cpuOf = (): Record<string, number> =>
      Object.fromEntries(Object.entries(pids).map(([name, pid]) => [name, cpuSeconds(pid)]));
    const cpuBefore = cpuOf();
    const machineBefore = machineBusySeconds();
    const fsyncsBefore = await etcdFsyncs(etcd.endpoint);
    const gcBefore = await gcSeconds(httpAddress);
    await serverLoopDelay(httpAddress); // resets the control plane's histogram
    const benchLoopDelay = monitorEventLoopDelay({ resolution: LOOP_DELAY_RESOLUTION_MS });
    benchLoopDelay.enable();
    groups.forEach((group) => group.measure());
    const began = performance.now();
    let next = 0;
    await Promise.all(
      Array.from({ length: 32 }, async () => {
        for (let n = next++; n < creates; n = next++) {
          // paced: pod n is due at n / rate seconds (a latency goal means something below saturation)
          const wait = began + (n * 1000) / rate - performance.now();
          if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
          createdAt[n] = wallClock();
          const pod = benchPod(`w-${n}`, WATCH_NAMESPACE);
          pod.spec.nodeName = nodeOf(n, nodes);
          await admin.create(pod);
        }
      }),
    );
    const createSeconds = (performance.now() - began) / 1000;
    let timedOut = false;
    const timeout = setTimeout(() => {
      timedOut = true;
      groups.forEach((group) => group.stop());
    }, 300_000);
    await Promise.all(groups.map((group) => group.complete));
    clearTimeout(timeout);
    const deliverSeconds = (performance.now() - began) / 1000;
    const cpuAfter = cpuOf();
    const machineAfter = machineBusySeconds();
    const fsyncsAfter = await etcdFsyncs(etcd.endpoint);
    benchLoopDelay.disable();
    const controlPlaneLoop = await serverLoopDelay(httpAddress);
    const gcAfter = await gcSeconds(httpAddress);
    const gc = Object.keys(gcAfter)
      .map((kind) => `${kind} ${(gcAfter[kind]! - (gcBefore[kind] ?? 0)).toFixed(1)}`)
      .join(', ');
    const reports = await Promise.all(groups.map((group) => group.report()));

    // latency of every delivery, and per pod its first delivery (the create path's share)
    const wrong = reports.reduce((sum, report) => sum + report.wrong, 0);
    const deliveries = reports.reduce((sum, report) => sum + report.deliveries.length / 2, 0);
    const latencies = new Float64Array(deliveries);
    const first = new Float64Array(creates).fill(Infinity);
    let k = 0;
    for (const report of reports) {
      const pairs = report.deliveries;
      for (let i = 0; i < pairs.length; i += 2) {
        const n = pairs[i]!;
        const latency = pairs[i + 1]! - createdAt[n]!;
        latencies[k++] = latency;
        if (latency < first[n]!) first[n] = latency;
      }
    }
    const spread = new Float64Array(deliveries);
    k = 0;
    for (const report of reports) {
      const pairs = report.deliveries;
      for (let i = 0; i < pairs.length; i += 2)
        spread[k++] = pairs[i + 1]! - createdAt[pairs[i]!]! - first[pairs[i]!]!;
    }
    const ms = (delay: { p99: number; max: number }): string =>
      `p99 ${delay.p99.toFixed(0)} ms, max ${delay.max.toFixed(0)} ms`;
    const cpu = (name: string): number => cpuAfter[name]! - cpuBefore[name]!;
    const clientCpu = forked.reduce((sum, _, c) => sum + cpu(`client${c}`), 0);
    out(
      `${watcherCount} watchers on pods (${Math.ceil(watcherCount / 2)} all, ${Math.floor(watcherCount / 2)} by spec.nodeName over ${nodes} nodes), ` +
        (clientProcesses > 0
          ? `in ${clientProcesses} client processes of ${plans[0]!.connections} connections each`
          : `in this process over ${connections} connections`) +
        ` (flow-control window ${windowBytes} B), ${creates} pods created at ${rate}/s (32 in flight at most):`,
    );
    out(
      `  etcd watchers: ${etcdWatchersBefore} before, ${etcdWatchersOpen} with the ${watcherCount} API watches open`,
    );
    out(
      `  watchers with a wrong, missing or out-of-order event: ${wrong} of ${watcherCount}${timedOut ? ' (timed out waiting)' : ''}`,
    );
    out(
      `  events delivered: ${deliveries}; created in ${createSeconds.toFixed(1)} s, all delivered after ${deliverSeconds.toFixed(1)} s`,
    );
    out(`  delivery latency: ${quantiles(latencies)} (goal p99 < 100 ms)`);
    out(`    each pod's first delivery (the create path: API, etcd, cache): ${quantiles(first)}`);
    out(`    behind that pod's first delivery (the fan-out): ${quantiles(spread)}`);
    out(`  etcd: ${fsyncSummary(fsyncsBefore, fsyncsAfter)}`);
    out(
      `  event-loop delay: control plane ${ms(controlPlaneLoop)}; ` +
        (clientProcesses > 0
          ? `client processes, worst ${ms({ p99: Math.max(...reports.map((r) => r.loopDelay.p99)), max: Math.max(...reports.map((r) => r.loopDelay.max)) })}; creating process ${ms(loopDelayOf(benchLoopDelay))}`
          : `this process (creates and watchers) ${ms(reports[0]!.loopDelay)}`),
    );
    out(`  control-plane GC seconds during the phase: ${gc}`);
    out(
      `  CPU seconds during the phase: control plane ${cpu('controlPlane').toFixed(1)}, etcd ${cpu('etcd').toFixed(1)}, ` +
        (clientProcesses > 0
          ? `watch clients ${clientCpu.toFixed(1)} (${clientProcesses} processes), creating process ${cpu('bench').toFixed(1)}`
          : `this benchmark (creates and watchers) ${cpu('bench').toFixed(1)}`) +
        `; control-plane RSS ${rssMiB(child.pid!).toFixed(0)} MiB`,
    );
    const ours = Object.keys(pids).reduce((sum, name) => sum + cpu(name), 0);
    const busy = machineAfter.busy - machineBefore.busy;
    out(
      `  machine: ${machineAfter.cores} cores busy ${busy.toFixed(0)} of ${(machineAfter.cores * deliverSeconds).toFixed(0)} core-seconds, ` +
        `of which by processes other than the control plane, etcd and the clients ${Math.max(0, busy - ours).toFixed(0)}`,
    );
  } finally {
    for (const cleanup of cleanups.reverse()) await cleanup();
  }
}

if (process.argv.includes('--watch-client')) await watchClientProcess();
else await main();
