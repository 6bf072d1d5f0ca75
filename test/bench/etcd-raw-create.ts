/**
 * Raw etcd create-if-absent throughput: the baseline the API create benchmark is compared with
 * (issue 2: API creates should reach at least 0.6 of this on the same etcd, same run), and the
 * same creates through EtcdStore, to show what the store layer costs.
 *
 *   node dist/test/bench/etcd-raw-create.js [--endpoint URL] [--payload BYTES] [--concurrency N] [--seconds S]
 *
 * Without --endpoint it starts its own etcd on a free port with a temp data dir (and removes it).
 * The two measurements alternate over two rounds: on a shared 2-core machine a single run of
 * each is at the mercy of whatever else runs at that moment.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { randomBytes } from 'node:crypto';
import { Etcd3 } from 'etcd3';
import { startEtcd } from '../../cli/up/etcd-process.js';
import { EtcdStore } from '../../controlplane/store/etcd-store.js';

/** Benchmark keys live under this prefix; delete it afterwards on a shared etcd. */
export const BENCH_PREFIX = '/bench/';

export interface CreateBenchOptions {
  endpoint: string;
  payloadBytes: number;
  /** Transactions in flight at once. */
  concurrency: number;
  durationMs: number;
}

export interface CreateBenchResult {
  transactions: number;
  seconds: number;
  txnPerSec: number;
  latencyMs: { p50: number; p99: number; max: number };
}

/** `concurrency` loops of `create(i)` (with fresh i) for `durationMs`. */
async function measureCreates(
  options: CreateBenchOptions,
  create: (i: number) => Promise<unknown>,
): Promise<CreateBenchResult> {
  const latencies: number[] = [];
  let next = 0;
  await create(next++); // opens the connection, untimed
  const began = performance.now();
  const until = began + options.durationMs;
  const worker = async (): Promise<void> => {
    while (performance.now() < until) {
      const start = performance.now();
      await create(next++);
      latencies.push(performance.now() - start);
    }
  };
  await Promise.all(Array.from({ length: options.concurrency }, worker));
  const seconds = (performance.now() - began) / 1000;
  latencies.sort((a, b) => a - b);
  const at = (q: number): number =>
    latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))] ?? 0;
  return {
    transactions: latencies.length,
    seconds,
    txnPerSec: latencies.length / seconds,
    latencyMs: { p50: at(0.5), p99: at(0.99), max: latencies[latencies.length - 1] ?? 0 },
  };
}

/** Create-if-absent transactions straight through the etcd3 client, each on a new key. */
export async function measureRawEtcdCreates(options: CreateBenchOptions): Promise<CreateBenchResult> {
  const client = new Etcd3({ hosts: options.endpoint });
  const prefix = `${BENCH_PREFIX}raw-${randomBytes(4).toString('hex')}/`;
  const payload = randomBytes(options.payloadBytes);
  try {
    return await measureCreates(options, async (i) => {
      const key = Buffer.from(`${prefix}${i}`);
      const response = await client.kv.txn({
        compare: [{ key, target: 'Create', result: 'Equal', create_revision: 0 }],
        success: [{ request_put: { key, value: payload } }],
        failure: [],
      });
      if (!response.succeeded) throw new Error(`create ${key.toString()}: it already exists`);
    });
  } finally {
    client.close();
  }
}

/** The same creates through EtcdStore.create. */
export async function measureStoreCreates(options: CreateBenchOptions): Promise<CreateBenchResult> {
  const store = new EtcdStore({
    endpoints: [options.endpoint],
    prefix: `${BENCH_PREFIX}store-${randomBytes(4).toString('hex')}`,
  });
  const payload = randomBytes(options.payloadBytes);
  try {
    return await measureCreates(options, (i) =>
      store.create({ resource: 'pods', namespace: 'bench', name: `p${i}` }, payload),
    );
  } finally {
    await store.close();
  }
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      endpoint: { type: 'string' },
      payload: { type: 'string', default: '1024' },
      concurrency: { type: 'string', default: '64' },
      seconds: { type: 'string', default: '5' },
    },
  });
  let endpoint = values.endpoint;
  let cleanup = async (): Promise<void> => {};
  if (endpoint === undefined) {
    const dir = mkdtempSync(join(tmpdir(), 'skiff-bench-etcd-'));
    const etcd = await startEtcd({
      dataDir: join(dir, 'data'),
      output: { logFile: join(dir, 'etcd.log') },
    });
    endpoint = etcd.endpoint;
    cleanup = async () => {
      await etcd.stop();
      rmSync(dir, { recursive: true, force: true });
    };
  } else {
    const shared = endpoint;
    cleanup = async () => {
      const client = new Etcd3({ hosts: shared });
      await client.delete().prefix(BENCH_PREFIX);
      client.close();
    };
  }
  try {
    const options = {
      endpoint,
      payloadBytes: Number(values.payload),
      concurrency: Number(values.concurrency),
      durationMs: Number(values.seconds) * 1000,
    };
    const fmt = (n: number): string => n.toFixed(2);
    const line = (label: string, result: CreateBenchResult): string =>
      `  ${label}: ${result.txnPerSec.toFixed(0)} txn/s (${result.transactions} in ` +
      `${fmt(result.seconds)} s), p50 ${fmt(result.latencyMs.p50)} ms, ` +
      `p99 ${fmt(result.latencyMs.p99)} ms\n`;
    process.stdout.write(`create-if-absent, ${options.payloadBytes} B payload, etcd ${endpoint}\n`);
    const single = await measureRawEtcdCreates({ ...options, concurrency: 1, durationMs: 2000 });
    process.stdout.write(line('raw etcd, 1 in flight', single));
    for (let round = 1; round <= 2; round++) {
      const raw = await measureRawEtcdCreates(options);
      const viaStore = await measureStoreCreates(options);
      process.stdout.write(
        line(`round ${round} raw etcd, ${options.concurrency} in flight`, raw) +
          line(`round ${round} EtcdStore, ${options.concurrency} in flight`, viaStore) +
          `  round ${round} EtcdStore / raw = ${(viaStore.txnPerSec / raw.txnPerSec).toFixed(2)}\n`,
      );
    }
  } finally {
    await cleanup();
  }
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  await main();
}
