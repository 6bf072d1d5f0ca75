import assert from 'node:assert/strict';
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { UnavailableError } from '../../../proto/errors.js';
import { startShim } from './helper.js';

test('a start whose shim never reports fails within its deadline, saying what to check', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'skiff-helper-test-'));
  const fake = join(dir, 'hung-helper');
  await writeFile(fake, `#!/bin/sh\necho $$ > ${dir}/pid\nexec sleep 600\n`);
  await chmod(fake, 0o755);
  const saved = process.env.SKIFF_HELPER;
  process.env.SKIFF_HELPER = fake;
  try {
    const began = Date.now();
    await assert.rejects(
      startShim(join(dir, 'spec'), 'start container c1', undefined, 300),
      (e: unknown) =>
        e instanceof UnavailableError &&
        /^start container c1: the shim did not report within 0.3 s; check/.test(e.message),
    );
    assert.ok(Date.now() - began < 5000);
  } finally {
    if (saved === undefined) delete process.env.SKIFF_HELPER;
    else process.env.SKIFF_HELPER = saved;
    const pid = Number(await readFile(join(dir, 'pid'), 'utf8').catch(() => '0'));
    if (pid > 0) process.kill(pid, 'SIGKILL');
    await rm(dir, { recursive: true, force: true });
  }
});
