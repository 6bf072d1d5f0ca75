/**
 * Real etcd and NATS servers for node:test suites, started with the product launchers
 * (cli/up/*-process.ts) on free loopback ports with temp data dirs. Each helper registers an
 * `after()` hook in the calling suite that stops the server by pid and removes its directory,
 * whether the suite passed or failed.
 *
 *   describe('my suite', () => {
 *     const etcd = withEtcd();
 *     test('…', async () => { const store = new EtcdStore({ endpoints: [etcd().endpoint] }); … });
 *   });
 */
import { after, before } from 'node:test';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startEtcd, type EtcdProcess } from '../../cli/up/etcd-process.js';
import { startNats, type NatsProcess } from '../../cli/up/nats-process.js';

export interface TestEtcd {
  endpoint: string;
  /** The process now running (it changes across restart()). */
  readonly process: EtcdProcess;
  dataDir: string;
  logFile: string;
  /** Stops etcd, leaving its data. */
  stop(): Promise<void>;
  /** Starts etcd again on the same data dir and ports (after stop()). */
  start(): Promise<void>;
  /** stop() then start(): for "watch across an etcd restart". */
  restart(): Promise<void>;
  /** Stops etcd and removes its directory. Registered with after() by the helpers. */
  dispose(): Promise<void>;
}

export interface TestNats {
  endpoint: string;
  readonly process: NatsProcess;
  dispose(): Promise<void>;
}

/** Starts etcd now; the caller disposes it (startTestEtcd does not register hooks). */
export async function launchTestEtcd(): Promise<TestEtcd> {
  const dir = mkdtempSync(join(tmpdir(), 'skiff-test-etcd-'));
  const dataDir = join(dir, 'data');
  const logFile = join(dir, 'etcd.log');
  let current: EtcdProcess | undefined;
  let running = false;
  try {
    current = await startEtcd({ dataDir, output: { logFile } });
    running = true;
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  const first = current;
  const handle: TestEtcd = {
    endpoint: first.endpoint,
    get process() {
      return current!;
    },
    dataDir,
    logFile,
    async stop() {
      await current?.stop();
      running = false;
    },
    async start() {
      if (running) return;
      current = await startEtcd({
        dataDir,
        output: { logFile },
        clientPort: first.clientPort,
        peerPort: first.peerPort,
      });
      running = true;
    },
    async restart() {
      await handle.stop();
      await handle.start();
    },
    async dispose() {
      await handle.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return handle;
}

/** Starts etcd now and registers its disposal with the calling suite's after(). */
export async function startTestEtcd(): Promise<TestEtcd> {
  const etcd = await launchTestEtcd();
  after(() => etcd.dispose());
  return etcd;
}

/**
 * Registers before()/after() hooks in the calling suite and returns an accessor for the etcd
 * they start; call it inside tests, not at suite definition time.
 */
export function withEtcd(): () => TestEtcd {
  let etcd: TestEtcd | undefined;
  before(async () => {
    etcd = await launchTestEtcd();
  });
  after(async () => {
    await etcd?.dispose();
  });
  return () => {
    if (etcd === undefined) throw new Error('withEtcd(): etcd is only available inside tests');
    return etcd;
  };
}

export async function launchTestNats(): Promise<TestNats> {
  const dir = mkdtempSync(join(tmpdir(), 'skiff-test-nats-'));
  let nats: NatsProcess;
  try {
    nats = await startNats({ storeDir: join(dir, 'jetstream'), output: { logFile: join(dir, 'nats.log') } });
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  return {
    endpoint: nats.endpoint,
    process: nats,
    async dispose() {
      await nats.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Starts nats-server now and registers its disposal with the calling suite's after(). */
export async function startTestNats(): Promise<TestNats> {
  const nats = await launchTestNats();
  after(() => nats.dispose());
  return nats;
}

export function withNats(): () => TestNats {
  let nats: TestNats | undefined;
  before(async () => {
    nats = await launchTestNats();
  });
  after(async () => {
    await nats?.dispose();
  });
  return () => {
    if (nats === undefined) throw new Error('withNats(): NATS is only available inside tests');
    return nats;
  };
}
