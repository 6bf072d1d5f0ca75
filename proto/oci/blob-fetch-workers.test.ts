/**
 * The layer lanes: a worker thread and this thread fetch the same blob alike, a registry's
 * refusal comes back as FetchStatusError with its head, and retired workers finish their jobs,
 * end, and are started anew for later fetches.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import {
  BlobFetchWorkers,
  FetchStatusError,
  ThisThreadFetcher,
  type FetchJob,
} from './blob-fetch-workers.js';

const blob = randomBytes(3 << 20);
const digest = `sha256:${createHash('sha256').update(blob).digest('hex')}`;
let refuse = false;
let delayMs = 0;
const server = createServer((socket) => {
  socket.on('error', () => undefined);
  socket.once('data', () => {
    const answer = refuse
      ? Buffer.from('HTTP/1.1 403 Forbidden\r\nContent-Length: 2\r\n\r\nno')
      : Buffer.concat([Buffer.from(`HTTP/1.1 200 OK\r\nContent-Length: ${blob.length}\r\n\r\n`), blob]);
    setTimeout(() => socket.end(answer), delayMs);
  });
});
let dir: string;
let url: string;
let n = 0;
const job = (): FetchJob => ({
  url,
  headers: {},
  insecureTls: false,
  allowHttp: false,
  path: join(dir, `ingest-${n++}`),
  kept: 0,
  size: blob.length,
  attempts: 2,
  retryDelayMs: 1,
  idleTimeoutMs: 5000,
});

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'skiff-blob-fetch-workers-'));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/v2/a/blobs/${digest}`;
});
after(async () => {
  server.close();
  await rm(dir, { recursive: true, force: true });
});

test('a worker and this thread fetch a blob alike; a refusal is a FetchStatusError', async () => {
  const workers = new BlobFetchWorkers(1);
  const here = new ThisThreadFetcher();
  try {
    for (const lane of [workers, here]) {
      const j = job();
      const r = await lane.fetch(j, () => undefined);
      assert.equal(r.digest, digest);
      assert.equal(r.fetched, blob.length);
      assert.deepEqual(await readFile(j.path), blob);
      refuse = true;
      const err = await lane.fetch(job(), () => undefined).catch((e: unknown) => e);
      refuse = false;
      assert.ok(err instanceof FetchStatusError);
      assert.equal(err.status, 403);
      assert.equal(err.body.toString(), 'no');
    }
  } finally {
    workers.close();
    here.close();
  }
});

test('retired workers finish their jobs and end; a later fetch starts a new one', async () => {
  const workers = new BlobFetchWorkers(1);
  try {
    workers.start(1);
    workers.retire();
    delayMs = 100;
    const running = workers.fetch(job(), () => undefined);
    await new Promise((r) => setTimeout(r, 20));
    // retired while its job runs: the job still completes
    workers.retire();
    assert.equal((await running).digest, digest);
    delayMs = 0;
    assert.equal((await workers.fetch(job(), () => undefined)).digest, digest);
  } finally {
    delayMs = 0;
    workers.close();
  }
});
