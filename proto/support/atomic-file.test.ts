import { describe, test, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  lstatSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeFileAtomic } from './atomic-file.js';

describe('writeFileAtomic', () => {
  const dir = mkdtempSync(join(tmpdir(), 'skiff-atomic-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  test('writing replaces a planted symlink or a loose-mode file with a 0600 file, and leaves no temp file', async () => {
    const home = mkdtempSync(join(dir, 'write-'));
    const victim = join(home, 'victim');
    writeFileSync(victim, 'untouched');
    const linked = join(home, 'linked');
    symlinkSync(victim, linked);
    await writeFileAtomic(linked, 'server: h:1\ntoken: t\n', { mode: 0o600, durable: true });
    assert.equal(readFileSync(victim, 'utf8'), 'untouched');
    assert.ok(lstatSync(linked).isFile());
    assert.equal(lstatSync(linked).mode & 0o777, 0o600);
    const loose = join(home, 'loose');
    writeFileSync(loose, 'old', { mode: 0o644 });
    await writeFileAtomic(loose, 'server: h:1\ntoken: t\n', { mode: 0o600, durable: false });
    assert.equal(statSync(loose).mode & 0o777, 0o600);
    assert.deepEqual(readdirSync(home).sort(), ['linked', 'loose', 'victim']);
  });
});
