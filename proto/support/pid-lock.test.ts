import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { UnavailableError } from '../errors.js';
import { PidLock, isSameProcess, ownIdentity, processStartTime } from './pid-lock.js';

let dir: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'skiff-pidlock-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** A pid that was just used and is now gone. */
function deadPid(): number {
  const r = spawnSync('sh', ['-c', 'echo $$']);
  return Number(String(r.stdout).trim());
}

test('liveness is pid and start time, never the pid alone', async () => {
  const me = ownIdentity();
  assert.equal(me.startTime, processStartTime(process.pid));
  assert.equal(isSameProcess(me.pid, me.startTime), true);
  assert.equal(isSameProcess(me.pid, `${me.startTime}1`), false, 'a recycled pid is another process');
  assert.equal(isSameProcess(deadPid(), me.startTime), false);
});

test('a held lock is not taken; released, it is free again', async () => {
  const path = join(dir, 'a.lock');
  const lock = await PidLock.tryAcquire(path);
  assert.ok(lock);
  const me = ownIdentity();
  assert.equal(await readFile(path, 'utf8'), `${me.pid} ${me.startTime}\n`);
  assert.equal(await PidLock.tryAcquire(path), undefined);
  await assert.rejects(
    PidLock.acquire(path, { timeoutMs: 50, action: 'update image records' }),
    (e: unknown) => e instanceof UnavailableError && e.message.includes(`held by process ${me.pid}`),
  );
  await lock.release();
  const again = await PidLock.tryAcquire(path);
  assert.ok(again);
  await again.release();
  assert.deepEqual(await readdir(dir), [], 'no temporary file left');
});

test('stale locks (dead owner, recycled pid, empty, garbage) are taken over', async () => {
  const me = ownIdentity();
  for (const content of [`${deadPid()} ${me.startTime}\n`, `${me.pid} ${me.startTime}7\n`, '', 'junk']) {
    const path = join(dir, 'stale.lock');
    await writeFile(path, content);
    const lock = await PidLock.tryAcquire(path);
    assert.ok(lock, JSON.stringify(content));
    await lock.release();
  }
  assert.deepEqual(await readdir(dir), []);
});

test('a takeover lock left by a taker that died does not block the takeover', async () => {
  const path = join(dir, 'guarded.lock');
  await writeFile(path, `${deadPid()} 1\n`);
  await writeFile(`${path}.takeover`, `${deadPid()} 1\n`);
  const lock = await PidLock.tryAcquire(path);
  assert.ok(lock);
  await lock.release();
  assert.deepEqual(await readdir(dir), []);
});

test('many takers racing for one stale lock: exactly one wins', async () => {
  for (let round = 0; round < 20; round++) {
    const path = join(dir, 'race.lock');
    await writeFile(path, `${deadPid()} 1\n`);
    const locks = await Promise.all(Array.from({ length: 16 }, () => PidLock.tryAcquire(path)));
    const winners = locks.filter((l) => l !== undefined);
    assert.equal(winners.length, 1, `round ${round}`);
    await winners[0]!.release();
  }
  assert.deepEqual(await readdir(dir), []);
});

test('a lock taken over from this holder is not removed by its late release', async () => {
  const path = join(dir, 'late.lock');
  const first = await PidLock.tryAcquire(path);
  assert.ok(first);
  await writeFile(join(dir, 'other'), `${deadPid()} 1\n`);
  await rm(path);
  await writeFile(path, `${deadPid()} 1\n`);
  const second = await PidLock.tryAcquire(path);
  assert.ok(second);
  await first.release();
  assert.equal(await PidLock.tryAcquire(path), undefined, "the second holder's lock stays");
  await second.release();
  await rm(join(dir, 'other'));
});
