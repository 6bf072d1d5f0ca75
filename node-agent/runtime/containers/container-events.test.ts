/**
 * The event hub over real container records in a scratch directory (inotify works without root);
 * the containers themselves are simulated by writing their records as the runtime and the shim
 * do. Real containers' events are tested in test/integration/runtime-pods.test.ts.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ResourceExhaustedError } from '../../../proto/errors.js';
import type { ContainerEvent, ContainerWatch } from '../pod-runtime.js';
import type { ContainerInfo } from './container-runtime.js';
import { ContainerEventHub, transitions, type ContainerEventHubOptions } from './container-events.js';
import { ContainerStore, newContainerId, type ContainerConfig, type ContainerState } from './state.js';

let base: string;
let store: ContainerStore;
/** A state the hub reads instead of the file: a change no file tells of (a shim that died). */
const unannounced = new Map<string, ContainerState>();
/** A state the hub reads instead of the file, which nothing tells of (an inotify event lost). */
const missed = new Map<string, ContainerState>();

before(async () => {
  base = await mkdtemp(join(tmpdir(), 'skiff-events-'));
  store = new ContainerStore(base);
  await store.init();
});
after(async () => {
  await rm(base, { recursive: true, force: true });
});

function hub(options: ContainerEventHubOptions = {}): ContainerEventHub {
  return new ContainerEventHub(
    {
      dir: store.dir,
      ids: () => store.ids(),
      read: async (id): Promise<ContainerInfo> => {
        const config = await store.config(id);
        const state = unannounced.get(id) ?? missed.get(id) ?? (await store.state(id));
        return { id, name: config.name, config, state };
      },
      changedUnannounced: (info) => unannounced.has(info.id),
    },
    options,
  );
}

let n = 0;
async function createRecord(extra: Partial<ContainerConfig> = {}): Promise<string> {
  const id = newContainerId();
  const config: ContainerConfig = {
    id,
    name: `c${n++}`,
    created: new Date().toISOString(),
    kind: 'container',
    rootfs: { type: 'bind', source: '/nonexistent', options: ['rbind'] },
    cgroupParent: 'skiff',
    argv: ['true'],
    env: [],
    cwd: '/',
    user: '',
    groupAdd: [],
    hostname: 'h',
    network: { mode: 'none' },
    readOnly: false,
    seccomp: 'default',
    volumes: [],
    autoRemove: false,
    logMaxBytes: 1000,
    logMaxFiles: 1,
    labels: {},
    ...extra,
  };
  await store.create(config, { status: 'created' });
  return id;
}

const started = (): ContainerState => ({ status: 'running', pid: 1, startedAt: new Date().toISOString() });
const exited = (exitCode: number, signal?: number): ContainerState => ({
  status: 'exited',
  startedAt: new Date().toISOString(),
  finishedAt: new Date().toISOString(),
  exitCode,
  signal,
  reason: exitCode === 0 ? 'Completed' : 'Error',
});

/** The next event, or a failure naming what was awaited. */
async function nextEvent(watch: ContainerWatch, what: string, timeoutMs = 5000): Promise<ContainerEvent> {
  const iterator = watch[Symbol.asyncIterator]();
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no event within ${timeoutMs} ms: ${what}`)), timeoutMs);
  });
  try {
    const result = await Promise.race([iterator.next(), timeout]);
    assert.ok(!result.done, `the watch ended while waiting for ${what}`);
    return result.value;
  } finally {
    clearTimeout(timer);
  }
}

/** fs.watch handles of this process, once those closed have gone (a close completes a moment later). */
async function fsWatchers(): Promise<number> {
  await new Promise((r) => setTimeout(r, 50));
  return process.getActiveResourcesInfo().filter((r) => r === 'FSEventWrap').length;
}

describe('transitions', () => {
  test('each step a container took between two reads, in order', () => {
    assert.deepEqual(transitions(undefined, { status: 'created' }), ['created']);
    assert.deepEqual(transitions(undefined, exited(3)), ['created', 'started', 'exited']);
    assert.deepEqual(transitions({ status: 'created' }, started()), ['started']);
    assert.deepEqual(transitions(started(), exited(0)), ['exited']);
    assert.deepEqual(transitions(exited(0), exited(0)), []);
    // a failed start exits without having started
    const startError: ContainerState = { status: 'exited', exitCode: 127, reason: 'StartError' };
    assert.deepEqual(transitions({ status: 'created' }, startError), ['exited']);
    assert.deepEqual(transitions(undefined, startError), ['created', 'exited']);
  });
});

describe('container event hub', () => {
  test('a watch lists what exists, then each change as one event, in order, above its revision', async () => {
    const existing = await createRecord();
    const events = hub();
    const watch = await events.watch();
    try {
      assert.deepEqual(
        watch.containers.map((c) => c.id),
        [existing],
      );
      const id = await createRecord({ labels: { app: 'web' } });
      const created = await nextEvent(watch, 'created');
      assert.equal(created.type, 'created');
      assert.equal(created.container.id, id);
      assert.ok(created.seq > watch.revision);
      await store.writeState(id, started());
      const start = await nextEvent(watch, 'started');
      assert.deepEqual([start.type, start.container.id], ['started', id]);
      await store.writeState(id, exited(137, 9));
      const exit = await nextEvent(watch, 'exited');
      assert.deepEqual([exit.type, exit.container.id], ['exited', id]);
      assert.deepEqual(exit.exit, {
        exitCode: 137,
        signal: 9,
        reason: 'Error',
        oomKilled: false,
        error: undefined,
      });
      await store.delete(id, created.container.name);
      const removed = await nextEvent(watch, 'removed');
      assert.deepEqual([removed.type, removed.container.id], ['removed', id]);
      assert.deepEqual(
        [created, start, exit, removed].map((e) => e.seq),
        [created.seq, created.seq + 1, created.seq + 2, created.seq + 3],
      );
    } finally {
      watch.close();
      await store.delete(existing, (await store.config(existing)).name);
    }
  });

  test('no exit is lost between the list and the stream, whenever the watch begins', async () => {
    const events = hub();
    const ids: string[] = [];
    const codes = new Map<string, number>();
    // containers come, start and exit while watches are being opened
    const churn = (async () => {
      for (let i = 0; i < 60; i++) {
        const id = await createRecord();
        ids.push(id);
        codes.set(id, i);
        await store.writeState(id, started());
        if (i % 3 === 0) await new Promise((r) => setImmediate(r));
        await store.writeState(id, exited(i));
      }
    })();
    const opening = Array.from(
      { length: 16 },
      (_, i) =>
        new Promise<ContainerWatch>((resolve, reject) =>
          setTimeout(() => events.watch().then(resolve, reject), i),
        ),
    );
    const watches = await Promise.all(opening);
    try {
      await churn;
      for (const [w, watch] of watches.entries()) {
        const seen = new Map<string, number | undefined>();
        for (const c of watch.containers)
          seen.set(c.id, c.state.status === 'exited' ? c.state.exitCode : undefined);
        const open = () => ids.filter((id) => seen.get(id) === undefined);
        while (open().length > 0) {
          const event = await nextEvent(watch, `watch ${w}: the exits of ${open().length} containers`);
          if (event.type === 'exited') seen.set(event.container.id, event.exit!.exitCode);
        }
        for (const id of ids)
          assert.equal(seen.get(id), codes.get(id), `watch ${w}, container ${codes.get(id)}`);
      }
    } finally {
      for (const watch of watches) watch.close();
      for (const id of ids) await store.delete(id, (await store.config(id)).name);
    }
  });

  test('watches select by label, sandbox and kind; each gets every event it selects', async () => {
    const events = hub();
    const web = await events.watch({ labels: { app: 'web' } });
    const pod = await events.watch({ sandbox: 'f'.repeat(64), kind: 'container' });
    const all = await events.watch();
    try {
      const a = await createRecord({ labels: { app: 'web', tier: 'front' } });
      const b = await createRecord({ labels: { app: 'db' }, sandbox: 'f'.repeat(64) });
      const c = await createRecord({ labels: { app: 'web' }, kind: 'sandbox' });
      const ids = async (watch: ContainerWatch, count: number) => {
        const out = new Set<string>();
        for (let i = 0; i < count; i++) out.add((await nextEvent(watch, `event ${i}`)).container.id);
        return out;
      };
      assert.deepEqual(await ids(all, 3), new Set([a, b, c]));
      assert.deepEqual(await ids(web, 2), new Set([a, c]));
      assert.deepEqual(await ids(pod, 1), new Set([b]));
      // nothing else is queued for them: a container of both selections comes next
      const d = await createRecord({ labels: { app: 'web' }, sandbox: 'f'.repeat(64) });
      assert.equal((await nextEvent(web, 'd')).container.id, d);
      assert.equal((await nextEvent(pod, 'd')).container.id, d);
      for (const id of [a, b, c, d]) await store.delete(id, (await store.config(id)).name);
    } finally {
      for (const watch of [web, pod, all]) watch.close();
    }
  });

  test('a change no file tells of (a shim that died) is found by the resync, and only by it', async () => {
    const id = await createRecord();
    await store.writeState(id, started());
    const withoutResync = await hub({ resyncMs: 3_600_000 }).watch();
    const withResync = await hub({ resyncMs: 50 }).watch();
    try {
      for (const watch of [withoutResync, withResync])
        assert.equal(watch.containers.find((c) => c.id === id)?.state.status, 'running');
      // what inotify still had to say about the writes above is said by now
      await new Promise((r) => setTimeout(r, 100));
      unannounced.set(id, { ...exited(255), reason: 'ShimDied' });
      const event = await nextEvent(withResync, 'the exit the resync finds', 2000);
      assert.deepEqual([event.type, event.exit?.reason], ['exited', 'ShimDied']);
      await assert.rejects(nextEvent(withoutResync, 'nothing', 300), /no event within 300 ms/);
    } finally {
      withoutResync.close();
      withResync.close();
      unannounced.delete(id);
      await store.delete(id, (await store.config(id)).name);
    }
  });

  test('a change nothing tells of (an inotify event lost) is found by the full resync', async () => {
    const id = await createRecord();
    await store.writeState(id, started());
    const partialOnly = await hub({ resyncMs: 50, fullResyncMs: 3_600_000 }).watch();
    const withFull = await hub({ resyncMs: 50, fullResyncMs: 200 }).watch();
    try {
      await new Promise((r) => setTimeout(r, 100));
      missed.set(id, exited(3));
      const event = await nextEvent(withFull, 'the exit the full resync finds', 2000);
      assert.deepEqual([event.type, event.exit?.exitCode], ['exited', 3]);
      await assert.rejects(nextEvent(partialOnly, 'nothing', 300), /no event within 300 ms/);
    } finally {
      partialOnly.close();
      withFull.close();
      missed.delete(id);
      await store.delete(id, (await store.config(id)).name);
    }
  });

  test('the disk is watched only while a watch is open', async () => {
    const before = await fsWatchers();
    const events = hub();
    const first = await events.watch();
    const second = await events.watch();
    try {
      assert.ok((await fsWatchers()) > before, 'watching');
      first.close();
      assert.ok((await fsWatchers()) > before, 'still watching for the second');
    } finally {
      first.close();
      second.close();
    }
    assert.equal(await fsWatchers(), before, 'no watcher left');
    // a closed watch ends its iteration
    assert.deepEqual(await first[Symbol.asyncIterator]().next(), { done: true, value: undefined });
  });

  test('a consumer that falls too far behind is ended with ResourceExhaustedError, the others go on', async () => {
    const events = hub({ maxBacklog: 3 });
    const slow = await events.watch();
    const fast = await events.watch();
    try {
      const ids: string[] = [];
      for (let i = 0; i < 5; i++) {
        ids.push(await createRecord());
        assert.equal((await nextEvent(fast, `created ${i}`)).container.id, ids[i]);
      }
      await assert.rejects(
        slow[Symbol.asyncIterator]().next(),
        (err: unknown) =>
          err instanceof ResourceExhaustedError && /fell more than 3 events behind/.test(err.message),
      );
      for (const id of ids) await store.delete(id, (await store.config(id)).name);
      assert.equal((await nextEvent(fast, 'removed')).type, 'removed');
    } finally {
      slow.close();
      fast.close();
    }
  });
});
