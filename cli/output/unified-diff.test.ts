import { test } from 'node:test';
import assert from 'node:assert/strict';
import { editScript, unifiedDiff, unifiedHunks } from './unified-diff.js';

/** Applies hunks to `before`, as `patch` would: the diff must turn before into after exactly. */
function applyHunks(before: string, hunks: string[]): string {
  const lines = before === '' ? [] : before.replace(/\n$/, '').split('\n');
  const out: string[] = [];
  let at = 0;
  for (let i = 0; i < hunks.length;) {
    const header = /^@@ -(\d+)(?:,(\d+))? \+\d+(?:,\d+)? @@$/.exec(hunks[i]!);
    assert.ok(header, `hunk header: ${hunks[i]}`);
    const count = header[2] === undefined ? 1 : Number(header[2]);
    const start = count === 0 ? Number(header[1]) : Number(header[1]) - 1;
    while (at < start) out.push(lines[at++]!);
    for (i++; i < hunks.length && !hunks[i]!.startsWith('@@'); i++) {
      const [mark, text] = [hunks[i]![0], hunks[i]!.slice(1)];
      if (mark === ' ' || mark === '-')
        assert.equal(lines[at++], text, 'context and removals match the old text');
      if (mark === ' ' || mark === '+') out.push(text);
    }
  }
  while (at < lines.length) out.push(lines[at++]!);
  return out.length ? `${out.join('\n')}\n` : '';
}

test('hunks are diff -u’s: three lines of context, GNU range syntax', () => {
  const before = 'a\nb\nc\nd\ne\nf\ng\nh\n';
  const after = 'a\nb\nc\nD\ne\nf\ng\nh\n';
  assert.deepEqual(unifiedHunks(before, after), [
    '@@ -1,7 +1,7 @@',
    ' a',
    ' b',
    ' c',
    '-d',
    '+D',
    ' e',
    ' f',
    ' g',
  ]);
  assert.deepEqual(unifiedHunks('', 'x\ny\n'), ['@@ -0,0 +1,2 @@', '+x', '+y']);
  assert.deepEqual(unifiedHunks('x\n', ''), ['@@ -1 +0,0 @@', '-x']);
  assert.deepEqual(unifiedHunks('same\n', 'same\n'), []);
  assert.equal(unifiedDiff('a\n', 'a\n', 'L', 'M'), '');
  assert.equal(
    unifiedDiff('a\n', 'b\n', 'LIVE/x', 'MERGED/x'),
    'diff -u -N LIVE/x MERGED/x\n--- LIVE/x\n+++ MERGED/x\n@@ -1 +1 @@\n-a\n+b\n',
  );
});

test('changes far apart get their own hunks; close ones share one', () => {
  const before = Array.from({ length: 30 }, (_, i) => `l${i}`).join('\n') + '\n';
  const far = before.replace('l2\n', 'X\n').replace('l25\n', 'Y\n');
  assert.equal(unifiedHunks(before, far).filter((l) => l.startsWith('@@')).length, 2);
  const near = before.replace('l2\n', 'X\n').replace('l8\n', 'Y\n');
  assert.equal(unifiedHunks(before, near).filter((l) => l.startsWith('@@')).length, 1);
});

test('random texts: the diff turns one into the other, with a shortest edit script', () => {
  let seed = 11;
  const random = (n: number): number => (seed = (seed * 1103515245 + 12345) % 2 ** 31) % n;
  for (let round = 0; round < 300; round++) {
    const a = Array.from({ length: random(25) }, () => 'abcde'[random(5)]!);
    const b = Array.from({ length: random(25) }, () => 'abcde'[random(5)]!);
    const before = a.length ? `${a.join('\n')}\n` : '';
    const after = b.length ? `${b.join('\n')}\n` : '';
    assert.equal(
      applyHunks(before, unifiedHunks(before, after)),
      after,
      `${JSON.stringify(a)} → ${JSON.stringify(b)}`,
    );
    // Shortest: the edits are len(a) + len(b) - 2·LCS.
    const lcs = Array.from({ length: a.length + 1 }, () => new Array<number>(b.length + 1).fill(0));
    for (let i = 1; i <= a.length; i++)
      for (let j = 1; j <= b.length; j++)
        lcs[i]![j] =
          a[i - 1] === b[j - 1] ? lcs[i - 1]![j - 1]! + 1 : Math.max(lcs[i - 1]![j]!, lcs[i]![j - 1]!);
    const edits = editScript(a, b).filter((op) => op.type !== ' ').length;
    assert.equal(edits, a.length + b.length - 2 * lcs[a.length]![b.length]!);
  }
});
