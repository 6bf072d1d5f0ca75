/**
 * COPY/ADD entries from a context directory, without a runtime: the limits on a local archive.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { gzip, tar } from '../../../test/fixtures/images.js';
import { ARCHIVE_LIMITS, copyEntries } from './copy-step.js';
import { LayerStack } from './layer-stack.js';

describe('ADD of a local archive', () => {
  test('an archive of too many entries is refused, also when they hold no bytes', async () => {
    // a 20 MB gzip of two million empty files held 2.6 GB in the build's memory
    const dir = await mkdtemp(join(tmpdir(), 'skiff-copy-step-'));
    const saved = { ...ARCHIVE_LIMITS };
    try {
      const entries = Array.from({ length: 6 }, (_, i) => ({ name: `f${i}`, data: '' }));
      await writeFile(join(dir, 'many.tar.gz'), gzip(tar(entries)));
      const source = {
        stack: LayerStack.plain(dir),
        escape: 'refuse' as const,
        keepOwners: false,
        what: 'the build context',
      };
      const step = { kind: 'copy' as const, add: true, sources: ['many.tar.gz'], dest: '/x/' };
      const root = await LayerStack.open([]);
      assert.equal((await copyEntries(step, 2, source, root)).filter((e) => e.type === 'file').length, 6);
      ARCHIVE_LIMITS.entries = 5;
      await assert.rejects(
        copyEntries(step, 2, source, root),
        /Dockerfile:2: ADD many\.tar\.gz: the archive holds more than 5 entries/,
      );
      ARCHIVE_LIMITS.entries = saved.entries;
      ARCHIVE_LIMITS.bytes = 6 * 512;
      await assert.rejects(copyEntries(step, 2, source, root), /more than 500000 entries or 3072 bytes/);
    } finally {
      Object.assign(ARCHIVE_LIMITS, saved);
      await rm(dir, { recursive: true, force: true });
    }
  });

  test('an entry naming the destination itself must be a directory', async () => {
    // a file named '/' replaced DEST with a file, or became a nameless layer entry at the root
    const dir = await mkdtemp(join(tmpdir(), 'skiff-copy-step-'));
    try {
      const source = {
        stack: LayerStack.plain(dir),
        escape: 'refuse' as const,
        keepOwners: false,
        what: 'the build context',
      };
      const root = await LayerStack.open([]);
      const archives: [string, Parameters<typeof tar>[0]][] = [
        ['file.tar', [{ name: '/', data: 'evil' }]],
        ['link.tar', [{ name: './', type: 'symlink', linkname: '/etc' }]],
      ];
      for (const [name, entries] of archives) {
        await writeFile(join(dir, name), tar(entries));
        for (const dest of ['/', '/opt/']) {
          const step = { kind: 'copy' as const, add: true, sources: [name], dest };
          await assert.rejects(
            copyEntries(step, 2, source, root),
            /names the destination itself; refused/,
            `${name} ${dest}`,
          );
        }
      }
      await writeFile(
        join(dir, 'dir.tar'),
        tar([
          { name: './', type: 'dir' },
          { name: 'a', data: 'a' },
        ]),
      );
      const entries = await copyEntries(
        { kind: 'copy', add: true, sources: ['dir.tar'], dest: '/opt/' },
        2,
        source,
        root,
      );
      assert.deepEqual(entries.map((e) => `${e.path} ${e.type}`).sort(), ['opt directory', 'opt/a file']);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
