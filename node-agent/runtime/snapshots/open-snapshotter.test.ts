import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { after, before, test } from 'node:test';
import { pino } from 'pino';
import { InvalidArgumentError } from '../../../proto/errors.js';
import { openSnapshotter, type SnapshotterChoice } from './open-snapshotter.js';

let dir: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'skiff-open-snap-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

test('auto: overlay when the probe mounts, copy with a warning when it is refused', async () => {
  const lines: string[] = [];
  const logger = pino(
    { level: 'warn' },
    new Writable({
      write(chunk, _enc, done) {
        lines.push(String(chunk));
        done();
      },
    }),
  );
  const ok = await openSnapshotter(join(dir, 'a'), { probe: async () => ({ ok: true }), logger });
  assert.equal(ok.name, 'overlay');
  const fallback = await openSnapshotter(join(dir, 'b'), {
    probe: async () => ({ ok: false, reason: 'wrong fs type' }),
    logger,
  });
  assert.equal(fallback.name, 'copy');
  assert.equal(lines.length, 1);
  assert.match(lines[0]!, /overlay mounts refused; using the copy snapshotter/);
  assert.match(lines[0]!, /wrong fs type/);
  const forced = await openSnapshotter(join(dir, 'c'), {
    choice: 'copy',
    probe: async () => assert.fail('a forced choice does not probe'),
  });
  assert.equal(forced.name, 'copy');
  await assert.rejects(
    openSnapshotter(join(dir, 'd'), {
      choice: 'zfs' as SnapshotterChoice,
      probe: async () => ({ ok: true }),
    }),
    InvalidArgumentError,
  );
});
