import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile, appendFile, rename } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { formatCriLine, parseCriLine, readLogs, type LogEntry } from './logs.js';

test('CRI lines parse and format back', () => {
  const line = '2026-11-29T10:00:00.123456789Z stdout F hello world';
  const e = parseCriLine(line)!;
  assert.deepEqual(e, {
    time: '2026-11-29T10:00:00.123456789Z',
    stream: 'stdout',
    partial: false,
    text: 'hello world',
  });
  assert.equal(formatCriLine(e), line);
  assert.equal(parseCriLine('2026-11-29T10:00:00Z stderr P ')?.partial, true);
  assert.equal(parseCriLine('garbage'), undefined);
});

const entry = (n: number) => `2026-11-29T10:00:00.${String(n).padStart(9, '0')}Z stdout F line-${n}\n`;

async function collect(gen: AsyncGenerator<LogEntry>): Promise<string[]> {
  const out: string[] = [];
  for await (const e of gen) out.push(e.text);
  return out;
}

test('rotated files come first; tail counts across them; a half-written line waits', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'skiff-logs-'));
  try {
    const path = join(dir, 'container.log');
    await writeFile(`${path}.1`, entry(1) + entry(2));
    await writeFile(path, entry(3) + '2026-11-29T10:00:00Z stdout F half');
    assert.deepEqual(await collect(readLogs(path, 2)), ['line-1', 'line-2', 'line-3']);
    assert.deepEqual(await collect(readLogs(path, 2, { tail: 2 })), ['line-2', 'line-3']);
    assert.deepEqual(await collect(readLogs(path, 2, { tail: 0 })), []);
    await assert.rejects(collect(readLogs(path, 2, { tail: -1 })), /tail/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('follow picks up appends and rotation, and ends when the writer is finished', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'skiff-logs-'));
  try {
    const path = join(dir, 'container.log');
    await writeFile(path, entry(1));
    let finished = false;
    const seen: string[] = [];
    const reader = (async () => {
      for await (const e of readLogs(path, 2, { follow: true, pollMs: 5, finished: async () => finished }))
        seen.push(e.text);
    })();
    await new Promise((r) => setTimeout(r, 30));
    await appendFile(path, entry(2));
    await new Promise((r) => setTimeout(r, 30));
    await appendFile(path, entry(3));
    await rename(path, `${path}.1`);
    await writeFile(path, entry(4));
    await new Promise((r) => setTimeout(r, 30));
    finished = true;
    await reader;
    assert.deepEqual(seen, ['line-1', 'line-2', 'line-3', 'line-4']);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('a follower two rotations behind goes on with what is left, never ends early', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'skiff-logs-'));
  try {
    const path = join(dir, 'container.log');
    await writeFile(path, entry(1) + entry(2));
    let finished = false;
    const follower = readLogs(path, 2, { follow: true, pollMs: 5, finished: async () => finished });
    const seen: string[] = [];
    for (let i = 0; i < 2; i++) seen.push((await follower.next()).value!.text);
    // while the follower is not pulled: its file gets a line more, rotates, and is deleted by a
    // second rotation (two files kept); the file made then may take its inode number
    await appendFile(path, entry(3));
    await rename(path, `${path}.1`);
    await writeFile(path, entry(4));
    await rename(path, `${path}.1`);
    await writeFile(path, entry(5));
    finished = true;
    for await (const e of follower) seen.push(e.text);
    // line-3 went with the deleted file; what is on disk comes, whole lines only
    assert.deepEqual(seen, ['line-1', 'line-2', 'line-4', 'line-5']);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
