import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FailedPreconditionError } from '../../proto/errors.js';
import { processStartTime } from './process-support.js';
import { acquireStartLock } from './start-lock.js';

describe('start lock', () => {
  const dir = mkdtempSync(join(tmpdir(), 'skiff-start-lock-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  let n = 0;
  const lockPath = (): string => join(dir, `up-${++n}.lock`);

  /** The pid of a process that has exited (and been reaped). */
  const deadPid = (): number => spawnSync('true').pid!;

  test('a free lock is taken and released; a running owner is refused by pid', () => {
    const path = lockPath();
    const release = acquireStartLock(path, 'start cluster');
    assert.equal(readFileSync(path, 'utf8'), `${process.pid} ${processStartTime(process.pid)}`);
    assert.throws(
      () => acquireStartLock(path, 'start cluster'),
      (err: unknown) => err instanceof FailedPreconditionError && err.message.includes(`pid ${process.pid}`),
    );
    release();
    acquireStartLock(path, 'start cluster')();
  });

  test('a lock of a dead owner, or of a reused pid (another start time), is taken over without leftovers', () => {
    for (const stale of [`${deadPid()} 12345`, `${process.pid} 1`, `${deadPid()}`]) {
      const path = lockPath();
      writeFileSync(path, stale);
      const release = acquireStartLock(path, 'start cluster');
      assert.equal(readFileSync(path, 'utf8'), `${process.pid} ${processStartTime(process.pid)}`, stale);
      release();
    }
    assert.deepEqual(readdirSync(dir), []);
  });

  test("releasing leaves alone a lock that is no longer this process's", () => {
    const path = lockPath();
    const release = acquireStartLock(path, 'start cluster');
    writeFileSync(path, `${process.ppid} ${processStartTime(process.ppid)}`);
    release();
    assert.equal(readFileSync(path, 'utf8'), `${process.ppid} ${processStartTime(process.ppid)}`);
    rmSync(path);
  });
});
