import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { probeLayers, probeOverlay } from '../../node-agent/runtime/sys/overlay-probe.js';

let dir: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'skiff-overlay-probe-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

function overlayMountsUnder(path: string): Promise<string[]> {
  return readFile('/proc/self/mountinfo', 'utf8').then((text) =>
    text
      .split('\n')
      .map((l) => l.split(' ')[4] ?? '')
      .filter((m) => m.startsWith(path)),
  );
}

test('the overlay probe really mounts here, and leaves no mount and no files', async () => {
  assert.equal(process.getuid?.(), 0, 'the overlay probe mounts and must run as root');
  assert.deepEqual(await probeOverlay(dir), { ok: true });
  assert.deepEqual(await readdir(dir), []);
  assert.deepEqual(await overlayMountsUnder(dir), []);
});

test('a refused mount is a result that names the reason, not an exception', async () => {
  const base = join(dir, 'refused');
  await mkdir(join(base, 'lower'), { recursive: true });
  await mkdir(join(base, 'upper'));
  await writeFile(join(base, 'lower', 'probe'), 'lower');
  // no work dir: the kernel refuses the overlay
  const result = await probeLayers(base);
  assert.equal(result.ok, false);
  assert.match((result as { reason: string }).reason, /workdir=.*No such file or directory/);
  assert.deepEqual(await overlayMountsUnder(dir), []);
  await rm(base, { recursive: true });
});
