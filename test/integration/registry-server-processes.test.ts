/**
 * Several registry processes on one directory (as several control planes serve one registry),
 * and processes killed mid-upload: an upload started in one process continues in another, what
 * one writes the others serve at once, concurrent writers never corrupt a blob, a crash leaves no
 * visible blob, and memory stays flat while hundreds of megabytes stream through.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';
import { generateToken, type Role } from '../../controlplane/api/auth.js';
import { sha256Digest, type Digest } from '../../proto/oci/digest.js';
import { MediaType } from '../../proto/oci/media-types.js';
import type { TestRegistryOptions } from './registry-server-harness.js';

const CHILD = join(dirname(fileURLToPath(import.meta.url)), 'registry-server-child.js');
const MiB = 1024 * 1024;

interface Child {
  process: ChildProcess;
  address: string;
  pid: number;
}

/** Deterministic bytes, `size` of them, in 1 MiB chunks: a random block per seed, each chunk numbered. */
function* pattern(size: number, seed: number): Generator<Buffer> {
  const block = Buffer.alloc(MiB);
  let state = createHash('sha512').update(`seed ${seed}`).digest();
  for (let o = 0; o < MiB; o += 64) {
    state.copy(block, o);
    state = createHash('sha512').update(state).digest();
  }
  for (let sent = 0, n = 0; sent < size; n++) {
    const chunk = Buffer.from(block.subarray(0, Math.min(MiB, size - sent)));
    chunk.writeUInt32BE(n, 0);
    sent += chunk.length;
    yield chunk;
  }
}

function digestOf(size: number, seed: number): Digest {
  const hash = createHash('sha256');
  for (const chunk of pattern(size, seed)) hash.update(chunk);
  return `sha256:${hash.digest('hex')}`;
}

/** One HTTP request with a streamed body; resolves with status, headers and body text. */
function send(
  address: string,
  method: string,
  path: string,
  token: string,
  body?: Iterable<Buffer> | AsyncIterable<Buffer> | Buffer | string,
  headers: Record<string, string> = {},
): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: Buffer }> {
  const [host, port] = address.split(':');
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host,
        port: Number(port),
        method,
        path,
        headers: {
          authorization: `Bearer ${token}`,
          ...(body === undefined ? { 'content-length': '0' } : {}),
          ...(typeof body === 'string' || Buffer.isBuffer(body)
            ? { 'content-length': String(Buffer.byteLength(body)) }
            : {}),
          ...headers,
        },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }),
        );
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    if (body === undefined || typeof body === 'string' || Buffer.isBuffer(body)) req.end(body);
    else Readable.from(body).pipe(req);
  });
}

function peakRssMiB(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(/VmHWM:\s+(\d+)/.exec(status)?.[1] ?? 0) / 1024;
}

describe('registry processes sharing one directory', () => {
  let dir: string;
  let tokens: Record<Role, string>;
  const children: Child[] = [];

  async function startChild(options: TestRegistryOptions = {}): Promise<Child> {
    const child = spawn(process.execPath, [CHILD], {
      env: {
        ...process.env,
        SKIFF_LOG_LEVEL: 'warn',
        SKIFF_REGISTRY_CHILD: JSON.stringify({ dir, tokens, options }),
      },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    const line = await new Promise<string>((resolve, reject) => {
      let text = '';
      child.stdout!.on('data', (c: Buffer) => {
        text += c.toString();
        if (text.includes('\n')) resolve(text.split('\n')[0]!);
      });
      child.once('exit', (code) => reject(new Error(`registry child exited with ${code}`)));
    });
    const { address, pid } = JSON.parse(line) as { address: string; pid: number };
    const started = { process: child, address, pid };
    children.push(started);
    return started;
  }

  async function stop(child: Child, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    if (child.process.exitCode !== null || child.process.signalCode !== null) return;
    const exited = new Promise((resolve) => child.process.once('exit', resolve));
    child.process.kill(signal);
    await exited;
  }

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'skiff-registry-procs-'));
    tokens = {
      admin: generateToken(),
      edit: generateToken(),
      view: generateToken(),
      join: generateToken(),
      pull: generateToken(),
    };
  });
  after(async () => {
    for (const child of children) await stop(child).catch(() => undefined);
    await rm(dir, { recursive: true, force: true });
  });

  test('an upload goes on in another process; what one writes, the other serves at once', async () => {
    const [a, b] = [await startChild(), await startChild()];
    const post = await send(a.address, 'POST', '/v2/shared/app/blobs/uploads/', tokens.edit);
    assert.equal(post.status, 202);
    const location = post.headers.location as string;
    const chunks = ['first chunk, ', 'second chunk, ', 'third chunk'];
    let offset = 0;
    for (const [i, chunk] of chunks.entries()) {
      const via = i % 2 === 0 ? b : a;
      const res = await send(via.address, 'PATCH', location, tokens.edit, chunk, {
        'content-range': `${offset}-${offset + chunk.length - 1}`,
      });
      assert.equal(res.status, 202, res.body.toString());
      offset += chunk.length;
    }
    const status = await send(b.address, 'GET', location, tokens.view);
    assert.equal(status.headers.range, `0-${offset - 1}`);
    const config = Buffer.from(chunks.join(''));
    const digest = sha256Digest(config);
    assert.equal((await send(b.address, 'PUT', `${location}?digest=${digest}`, tokens.edit)).status, 201);
    assert.ok(
      (await send(a.address, 'GET', `/v2/shared/app/blobs/${digest}`, tokens.view)).body.equals(config),
    );

    const manifest = JSON.stringify({
      schemaVersion: 2,
      mediaType: MediaType.ociManifest,
      config: { mediaType: MediaType.ociConfig, digest, size: config.length },
      layers: [],
    });
    const put = await send(a.address, 'PUT', '/v2/shared/app/manifests/v1', tokens.edit, manifest, {
      'content-type': MediaType.ociManifest,
    });
    assert.equal(put.status, 201, put.body.toString());
    const fromB = await send(b.address, 'GET', '/v2/shared/app/manifests/v1', tokens.view);
    assert.equal(fromB.body.toString(), manifest);
    assert.deepEqual(
      JSON.parse((await send(b.address, 'GET', '/v2/_catalog', tokens.view)).body.toString()),
      {
        repositories: ['shared/app'],
      },
    );
    assert.equal(
      (await send(b.address, 'DELETE', `/v2/shared/app/manifests/${sha256Digest(manifest)}`, tokens.edit))
        .status,
      202,
    );
    assert.equal((await send(a.address, 'GET', '/v2/shared/app/manifests/v1', tokens.view)).status, 404);
  });

  test('concurrent writers: the same blob pushed through both at once, and two chunks racing for one upload', async (t) => {
    const [a, b] = children;
    const size = 24 * MiB;
    const digest = digestOf(size, 1);
    const both = await Promise.all(
      [a!, b!].map((c) =>
        send(
          c.address,
          'POST',
          `/v2/race/blob/blobs/uploads/?digest=${digest}`,
          tokens.edit,
          pattern(size, 1),
          {
            'content-length': String(size),
          },
        ),
      ),
    );
    assert.deepEqual(
      both.map((r) => r.status),
      [201, 201],
    );
    const blobs = await readdir(join(dir, 'content', 'blobs', 'sha256'));
    assert.equal(blobs.filter((h) => h === digest.slice(7)).length, 1);
    const pulled = createHash('sha256');
    pulled.update((await send(b!.address, 'GET', `/v2/race/blob/blobs/${digest}`, tokens.view)).body);
    assert.equal(`sha256:${pulled.digest('hex')}`, digest);

    // two PATCHes of the same upload at once: one is taken, the other refused as busy (a 416, or,
    // when its body is too big to read and drop, a closed connection)
    const location = (await send(a!.address, 'POST', '/v2/race/chunks/blobs/uploads/', tokens.edit)).headers
      .location as string;
    const racing = await Promise.all(
      [a!, b!].map((c) =>
        send(c.address, 'PATCH', location, tokens.edit, pattern(size, 2), {
          'content-range': `0-${size - 1}`,
          'content-length': String(size),
        }).catch((err: unknown) => err as Error),
      ),
    );
    const outcome = racing.map((r) => (r instanceof Error ? 'closed' : String(r.status))).sort();
    t.diagnostic(`racing chunks: ${outcome.join(', ')}`);
    assert.equal(outcome.filter((o) => o === '202').length, 1, `one chunk is taken: ${outcome.join(', ')}`);
    assert.ok(
      outcome.includes('416') || outcome.includes('closed'),
      `the other is refused: ${outcome.join(', ')}`,
    );
    const final = await send(b!.address, 'PUT', `${location}?digest=${digestOf(size, 2)}`, tokens.edit);
    assert.equal(final.status, 201, final.body.toString());
  });

  test('a process killed mid-upload leaves no visible blob; the upload resumes in another process', async () => {
    const victim = await startChild({ uploadClaimStaleMs: 500 });
    const size = 64 * MiB;
    const digest = digestOf(size, 3);
    // a monolithic upload: killed half-way
    const slow = async function* (): AsyncGenerator<Buffer> {
      let sent = 0;
      for (const chunk of pattern(size, 3)) {
        yield chunk;
        sent += chunk.length;
        if (sent === 8 * MiB) await new Promise((resolve) => setTimeout(resolve, 60_000));
      }
    };
    const monolithic = send(
      victim.address,
      'POST',
      `/v2/crash/app/blobs/uploads/?digest=${digest}`,
      tokens.edit,
      slow(),
      {
        'content-length': String(size),
      },
    ).catch((err: unknown) => err);
    // a chunked upload: killed half-way through a chunk
    const location = (await send(victim.address, 'POST', '/v2/crash/app/blobs/uploads/', tokens.edit)).headers
      .location as string;
    const chunked = send(victim.address, 'PATCH', location, tokens.edit, slow()).catch((err: unknown) => err);
    await new Promise((resolve) => setTimeout(resolve, 1500));
    await stop(victim, 'SIGKILL');
    assert.ok((await monolithic) instanceof Error);
    assert.ok((await chunked) instanceof Error);

    const survivor = await startChild({ uploadClaimStaleMs: 500 });
    assert.equal(
      (await send(survivor.address, 'HEAD', `/v2/crash/app/blobs/${digest}`, tokens.view)).status,
      404,
    );
    assert.ok(
      !(await readdir(join(dir, 'content', 'blobs', 'sha256'))).includes(digest.slice(7)),
      'no blob under its name',
    );
    // the chunked upload's holder is dead: after the stale time another process takes it over
    await new Promise((resolve) => setTimeout(resolve, 700));
    const status = await send(survivor.address, 'GET', location, tokens.edit);
    assert.equal(status.status, 204);
    const have = Number(/^0-(\d+)$/.exec(status.headers.range as string)![1]) + 1;
    assert.ok(have > 0 && have < size, `kept ${have} bytes`);
    let skipped = 0;
    const rest = async function* (): AsyncGenerator<Buffer> {
      for (const chunk of pattern(size, 3)) {
        if (skipped + chunk.length <= have) {
          skipped += chunk.length;
          continue;
        }
        yield chunk.subarray(Math.max(0, have - skipped));
        skipped += chunk.length;
      }
    };
    const resumed = await send(survivor.address, 'PATCH', location, tokens.edit, rest(), {
      'content-range': `${have}-${size - 1}`,
      'content-length': String(size - have),
    });
    assert.equal(resumed.status, 202, resumed.body.toString());
    assert.equal(
      (await send(survivor.address, 'PUT', `${location}?digest=${digest}`, tokens.edit)).status,
      201,
    );
    assert.equal(
      (await send(survivor.address, 'HEAD', `/v2/crash/app/blobs/${digest}`, tokens.view)).status,
      200,
    );
  });

  test('memory stays flat: 4x more bytes in (monolithic and chunked) and out raise the peak by little', async (t) => {
    const child = await startChild();
    /** Pushes `size` bytes monolithically and in a PATCH, and pulls them; returns the peak RSS after. */
    const round = async (size: number, seed: number): Promise<number> => {
      const digest = digestOf(size, seed);
      const post = await send(
        child.address,
        'POST',
        `/v2/big/app/blobs/uploads/?digest=${digest}`,
        tokens.edit,
        pattern(size, seed),
        { 'content-length': String(size) },
      );
      assert.equal(post.status, 201);
      const location = (await send(child.address, 'POST', '/v2/big/chunked/blobs/uploads/', tokens.edit))
        .headers.location as string;
      assert.equal(
        (await send(child.address, 'PATCH', location, tokens.edit, pattern(size, seed))).status,
        202,
      );
      assert.equal(
        (await send(child.address, 'PUT', `${location}?digest=${digest}`, tokens.edit)).status,
        201,
      );
      // read it back without holding it in this process either
      const hash = createHash('sha256');
      await new Promise<void>((resolve, reject) => {
        const [host, port] = child.address.split(':');
        request(
          {
            host,
            port: Number(port),
            path: `/v2/big/app/blobs/${digest}`,
            headers: { authorization: `Bearer ${tokens.view}` },
          },
          (res) => {
            res.on('data', (c: Buffer) => hash.update(c));
            res.on('end', () => resolve());
            res.on('error', reject);
          },
        )
          .on('error', reject)
          .end();
      });
      assert.equal(`sha256:${hash.digest('hex')}`, digest);
      return peakRssMiB(child.pid);
    };
    const start = peakRssMiB(child.pid);
    const warm = await round(128 * MiB, 4);
    const big = await round(512 * MiB, 5);
    t.diagnostic(
      `peak RSS ${start.toFixed(0)} MiB at start, ${warm.toFixed(0)} after 3 x 128 MiB, ${big.toFixed(0)} after 3 x 512 MiB`,
    );
    assert.ok(big - warm < 48, `moving 4x more bytes raised the peak by ${(big - warm).toFixed(0)} MiB`);
    assert.ok(big - start < 160, `peak RSS grew by ${(big - start).toFixed(0)} MiB in all`);
  });
});
