/**
 * The one conformance suite every Snapshotter implementation passes (as containerd's
 * core/snapshots/testsuite). Lifecycle and error rules run without privileges; the mount checks
 * (merged view, whiteouts, opaque directories, copy-on-write, 130 layers) really mount what the
 * snapshotter describes, as root, and unmount and delete everything afterwards even on failure.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readFile, readdir, rm, writeFile, lstat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  AlreadyExistsError,
  FailedPreconditionError,
  InvalidArgumentError,
  NotFoundError,
} from '../../proto/errors.js';
import { mountAll, unmount } from '../fixtures/images-mount.js';
import type { Snapshotter } from '../../node-agent/runtime/snapshots/snapshotter.js';

/** sha256 of every file under `dir` with its mode, by relative path: a byte-for-byte fingerprint. */
export async function treeFingerprint(dir: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  async function visit(rel: string): Promise<void> {
    const path = join(dir, rel);
    const st = await lstat(path);
    if (st.isDirectory()) {
      out.set(rel || '.', `dir ${st.mode.toString(8)}`);
      for (const name of (await readdir(path)).sort()) await visit(rel ? `${rel}/${name}` : name);
    } else if (st.isFile()) {
      out.set(
        rel,
        `file ${st.mode.toString(8)} ${createHash('sha256')
          .update(await readFile(path))
          .digest('hex')}`,
      );
    } else {
      out.set(rel, `other ${st.mode.toString(8)} ${st.rdev}`);
    }
  }
  await visit('');
  return out;
}

export function snapshotterConformance(name: string, open: (root: string) => Promise<Snapshotter>): void {
  describe(`${name} snapshotter conformance`, () => {
    let dir: string;
    let s: Snapshotter;
    const mounted: string[] = [];
    let n = 0;

    before(async () => {
      dir = await mkdtemp(join(tmpdir(), `skiff-snap-${name}-`));
      s = await open(join(dir, 'root'));
    });
    after(async () => {
      for (const m of mounted.reverse()) await unmount(m);
      await rm(dir, { recursive: true, force: true });
    });

    async function mountKey(key: string): Promise<string> {
      const target = join(dir, `m${n++}`);
      await mkdir(target);
      await mountAll(await s.mounts(key), target);
      mounted.push(target);
      return target;
    }
    async function release(target: string): Promise<void> {
      await unmount(target);
      mounted.splice(mounted.indexOf(target), 1);
    }
    function requireRoot(): void {
      assert.equal(
        process.getuid?.(),
        0,
        'the mount checks of the snapshotter conformance suite must run as root',
      );
    }

    test('lifecycle: prepare, commit, stat, walk, usage, remove', async () => {
      const mounts = await s.prepare('life-active');
      assert.equal(mounts.length, 1);
      assert.equal((await s.stat('life-active')).kind, 'active');
      const { dir: layer } = await s.writableLayer('life-active');
      await writeFile(join(layer, 'f'), 'x'.repeat(10000));
      await s.commit('life-committed', 'life-active', { labels: { a: 'b' } });
      await assert.rejects(s.stat('life-active'), NotFoundError);
      const info = await s.stat('life-committed');
      assert.equal(info.kind, 'committed');
      assert.equal(info.labels.a, 'b');
      assert.ok((await s.usage('life-committed')).size >= 10000);
      const keys: string[] = [];
      await s.walk((i) => {
        keys.push(i.key);
      });
      assert.ok(keys.includes('life-committed'));
      await s.prepare('life-child', 'life-committed');
      assert.equal((await s.stat('life-child')).parent, 'life-committed');
      await s.remove('life-child');
      await s.remove('life-committed');
      await assert.rejects(s.stat('life-committed'), NotFoundError);
    });

    test('remove: gone at once, its storage deleted in the background, by the next open, or by cleanup', async () => {
      const root = join(dir, 'trash-root');
      const t = await open(root);
      const snapshotDirs = () => readdir(join(root, 'snapshots'));
      const trash = () => readdir(join(root, 'trash'));
      await t.prepare('tr-base');
      await writeFile(join((await t.writableLayer('tr-base')).dir, 'f'), 'x'.repeat(20000));
      await t.commit('tr-L', 'tr-base');
      await t.prepare('tr-c1', 'tr-L');
      await writeFile(join((await t.writableLayer('tr-c1')).dir, 'g'), 'y'.repeat(20000));
      await t.remove('tr-c1');
      await assert.rejects(t.stat('tr-c1'), NotFoundError);
      assert.equal((await snapshotDirs()).length, 1, 'only the committed layer is left in sight');
      assert.ok((await t.reclaimable()).size >= 20000, 'the removed layer is counted until deleted');
      // the idle sweep
      const deadline = Date.now() + 5000;
      while ((await trash()).length > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      assert.deepEqual(await trash(), []);
      assert.equal((await t.reclaimable()).size, 0);

      await t.prepare('tr-c2', 'tr-L');
      await t.remove('tr-c2');
      await t.cleanup();
      assert.deepEqual(await trash(), [], 'cleanup (prune) deletes the trash now');
      // a process killed before its sweep: the next open deletes what it left
      await mkdir(join(root, 'trash', 'left-by-a-killed-process', 'fs'), { recursive: true });
      await writeFile(join(root, 'trash', 'left-by-a-killed-process', 'fs', 'h'), 'z');
      await open(root);
      const until = Date.now() + 5000;
      while ((await trash()).length > 0 && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
      assert.deepEqual(await trash(), []);
      assert.equal((await t.stat('tr-L')).kind, 'committed');
    });

    test('errors: taken keys, missing or uncommitted parents, wrong kinds, children', async () => {
      await s.prepare('err-a');
      await assert.rejects(s.prepare('err-a'), AlreadyExistsError);
      await assert.rejects(s.prepare('err-b', 'no-such-parent'), NotFoundError);
      await assert.rejects(s.prepare('err-b', 'err-a'), FailedPreconditionError);
      await assert.rejects(s.prepare(''), InvalidArgumentError);
      await s.commit('err-c', 'err-a');
      await assert.rejects(s.commit('err-c', 'err-c'), FailedPreconditionError);
      await assert.rejects(s.mounts('err-c'), FailedPreconditionError);
      await s.view('err-v', 'err-c');
      await assert.rejects(s.commit('err-d', 'err-v'), FailedPreconditionError);
      await assert.rejects(
        s.remove('err-c'),
        (err: unknown) => err instanceof FailedPreconditionError && /built on it/.test(err.message),
      );
      await s.remove('err-v');
      await s.remove('err-c');
      // a failed prepare leaves no storage behind
      assert.equal(await s.cleanup(), 0);
    });

    test('mounts: merged view, whiteouts and opaque directories, read-only views', async () => {
      requireRoot();
      await s.prepare('m-base');
      let m = await mountKey('m-base');
      await writeFile(join(m, 'a'), 'a1');
      await writeFile(join(m, 'doomed'), 'gone soon');
      await mkdir(join(m, 'dir'));
      await writeFile(join(m, 'dir', 'old1'), 'o1');
      await writeFile(join(m, 'dir', 'old2'), 'o2');
      await release(m);
      await s.commit('m-L1', 'm-base');

      await s.prepare('m-top', 'm-L1');
      m = await mountKey('m-top');
      await rm(join(m, 'doomed'));
      await rm(join(m, 'dir'), { recursive: true });
      await mkdir(join(m, 'dir'));
      await writeFile(join(m, 'dir', 'new'), 'n');
      await release(m);
      await s.commit('m-L2', 'm-top');

      await s.view('m-view', 'm-L2');
      const v = await mountKey('m-view');
      assert.equal(await readFile(join(v, 'a'), 'utf8'), 'a1');
      assert.deepEqual((await readdir(v)).sort(), ['a', 'dir']);
      assert.deepEqual(await readdir(join(v, 'dir')), ['new']);
      await assert.rejects(writeFile(join(v, 'x'), 'x'), /EROFS|read-only/);
      await release(v);
      await s.remove('m-view');
    });

    test('copy-on-write: lower layers stay byte-identical, containers are isolated', async () => {
      requireRoot();
      await s.prepare('cow-base');
      let m = await mountKey('cow-base');
      await writeFile(join(m, 'shared'), 'original');
      await mkdir(join(m, 'etc'));
      await writeFile(join(m, 'etc', 'conf'), 'conf');
      await release(m);
      await s.commit('cow-L1', 'cow-base');
      await s.view('cow-before', 'cow-L1');
      m = await mountKey('cow-before');
      const before = await treeFingerprint(m);
      await release(m);

      await s.prepare('cow-c1', 'cow-L1');
      await s.prepare('cow-c2', 'cow-L1');
      const c1 = await mountKey('cow-c1');
      const c2 = await mountKey('cow-c2');
      await writeFile(join(c1, 'shared'), 'changed by c1');
      await writeFile(join(c1, 'etc', 'conf'), 'c1 conf');
      await writeFile(join(c1, 'c1-only'), 'x');
      await rm(join(c1, 'etc'), { recursive: true });
      assert.equal(await readFile(join(c2, 'shared'), 'utf8'), 'original');
      assert.equal(await readFile(join(c2, 'etc', 'conf'), 'utf8'), 'conf');
      await assert.rejects(readFile(join(c2, 'c1-only')), /ENOENT/);
      await release(c1);
      await release(c2);

      m = await mountKey('cow-before');
      assert.deepEqual(await treeFingerprint(m), before);
      await release(m);
      for (const k of ['cow-before', 'cow-c1', 'cow-c2', 'cow-L1']) await s.remove(k);
    });

    test('130 layers stack and mount (past the one-page mount option limit)', async () => {
      requireRoot();
      let parent: string | undefined;
      for (let i = 0; i < 130; i++) {
        const key = `deep-${i}-active`;
        await s.prepare(key, parent);
        const { dir: layer } = await s.writableLayer(key);
        await writeFile(join(layer, `f${i}`), String(i));
        await s.commit(`deep-${i}`, key);
        parent = `deep-${i}`;
      }
      await s.prepare('deep-top', parent);
      const m = await mountKey('deep-top');
      const names = await readdir(m);
      assert.equal(names.length, 130);
      assert.equal(await readFile(join(m, 'f0'), 'utf8'), '0');
      assert.equal(await readFile(join(m, 'f129'), 'utf8'), '129');
      await release(m);
      await s.remove('deep-top');
      for (let i = 129; i >= 0; i--) await s.remove(`deep-${i}`);
    });
  });
}
