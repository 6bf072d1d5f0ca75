/**
 * Blob serving throughput of skiff's registry against Debian's docker-registry (distribution 2.8).
 *
 *   node dist/test/bench/registry-serve.js [--mb 250] [--layers 5] [--rounds 5]
 *
 * One image of `--layers` layers totalling `--mb` MB (random bytes, so nothing compresses) is
 * pushed to both: to a real `skiff controlplane` (etcd, NATS, the admin token: the registry as it
 * is deployed, auth included) and to `docker-registry serve` on a free loopback port with a config
 * in a temp dir (filesystem storage and the in-memory blob descriptor cache, as Debian's default
 * config has them; no auth). Then every blob is fetched with curl from each,
 * one after another and then all at once, alternating which registry goes first each round (the
 * machine is shared; only neighbours compare). Printed: MB/s (10^6 bytes) from curl's own
 * time_total, per round and the median, and the ratio skiff / docker-registry (goal ≥ 1.0).
 * Needs Debian's `apt-get install -y docker-registry curl`.
 */
import { execFile, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import {
  createReadStream,
  createWriteStream,
  mkdtempSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { once } from 'node:events';
import { promisify } from 'node:util';
import { parseArgs } from 'node:util';
import { freePort, startBenchCluster } from './api-create.js';

const run = promisify(execFile);

interface Blob {
  digest: string;
  size: number;
  path: string;
  mediaType: string;
}

interface Target {
  name: string;
  base: string;
  headers: string[];
}

function requireTool(command: string, pkg: string): void {
  try {
    statSync(command.startsWith('/') ? command : `/usr/bin/${command}`);
  } catch {
    throw new Error(`this benchmark needs ${command}: apt-get install -y ${pkg}`);
  }
}

async function writeRandomBlob(dir: string, size: number): Promise<Blob> {
  const path = join(dir, `layer-${randomBytes(4).toString('hex')}`);
  const out = createWriteStream(path);
  const hash = createHash('sha256');
  for (let written = 0; written < size;) {
    const chunk = randomBytes(Math.min(4 << 20, size - written));
    hash.update(chunk);
    if (!out.write(chunk)) await once(out, 'drain');
    written += chunk.length;
  }
  out.end();
  await once(out, 'finish');
  return {
    digest: `sha256:${hash.digest('hex')}`,
    size,
    path,
    mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip',
  };
}

/** POST for an upload, then PUT the whole blob to it (both registries take this form). */
async function pushBlob(target: Target, repo: string, blob: Blob): Promise<void> {
  const headers = Object.fromEntries(target.headers.map((h) => h.split(': ') as [string, string]));
  const post = await fetch(`${target.base}/v2/${repo}/blobs/uploads/`, { method: 'POST', headers });
  if (post.status !== 202)
    throw new Error(`${target.name}: POST upload: ${post.status} ${await post.text()}`);
  const location = new URL(post.headers.get('location')!, target.base);
  location.searchParams.set('digest', blob.digest);
  const put = await fetch(location, {
    method: 'PUT',
    headers: { ...headers, 'content-type': 'application/octet-stream', 'content-length': String(blob.size) },
    body: createReadStream(blob.path) as unknown as BodyInit,
    duplex: 'half',
  } as RequestInit);
  if (put.status !== 201)
    throw new Error(`${target.name}: PUT ${blob.digest}: ${put.status} ${await put.text()}`);
}

async function pushImage(target: Target, repo: string, config: Blob, layers: Blob[]): Promise<void> {
  for (const blob of [config, ...layers]) await pushBlob(target, repo, blob);
  const manifest = JSON.stringify({
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    config: {
      mediaType: 'application/vnd.oci.image.config.v1+json',
      digest: config.digest,
      size: config.size,
    },
    layers: layers.map((l) => ({ mediaType: l.mediaType, digest: l.digest, size: l.size })),
  });
  const headers = Object.fromEntries(target.headers.map((h) => h.split(': ') as [string, string]));
  const put = await fetch(`${target.base}/v2/${repo}/manifests/bench`, {
    method: 'PUT',
    headers: { ...headers, 'content-type': 'application/vnd.oci.image.manifest.v1+json' },
    body: manifest,
  });
  if (put.status !== 201) throw new Error(`${target.name}: PUT manifest: ${put.status} ${await put.text()}`);
}

/** curl one blob to /dev/null; its bytes and its own time_total (seconds). */
async function curlBlob(
  target: Target,
  repo: string,
  blob: Blob,
): Promise<{ bytes: number; seconds: number }> {
  const { stdout } = await run('curl', [
    '-sSf',
    '-o', '/dev/null',
    '-w', '%{size_download} %{time_total}',
    ...target.headers.flatMap((h) => ['-H', h]),
    `${target.base}/v2/${repo}/blobs/${blob.digest}`,
  ]); // prettier-ignore
  const [bytes, seconds] = stdout.trim().split(' ').map(Number) as [number, number];
  if (bytes !== blob.size)
    throw new Error(`${target.name}: ${blob.digest}: got ${bytes} of ${blob.size} bytes`);
  return { bytes, seconds };
}

/** MB/s fetching every layer one after another (sum of curl times), and all at once (wall time). */
async function measure(
  target: Target,
  repo: string,
  layers: Blob[],
): Promise<{ sequential: number; parallel: number }> {
  let bytes = 0;
  let seconds = 0;
  for (const layer of layers) {
    const one = await curlBlob(target, repo, layer);
    bytes += one.bytes;
    seconds += one.seconds;
  }
  const sequential = bytes / seconds / 1e6;
  const started = performance.now();
  const all = await Promise.all(layers.map((layer) => curlBlob(target, repo, layer)));
  const wall = (performance.now() - started) / 1000;
  const parallel = all.reduce((sum, r) => sum + r.bytes, 0) / wall / 1e6;
  return { sequential, parallel };
}

const median = (values: number[]): number => {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
};

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      mb: { type: 'string', default: '250' },
      layers: { type: 'string', default: '5' },
      rounds: { type: 'string', default: '5' },
    },
  });
  const totalBytes = Number(values.mb) * 1e6;
  const layerCount = Number(values.layers);
  const rounds = Number(values.rounds);
  requireTool('curl', 'curl');
  requireTool('docker-registry', 'docker-registry');
  const dir = mkdtempSync(join(tmpdir(), 'skiff-bench-registry-'));
  const cleanups: Array<() => Promise<void> | void> = [() => rmSync(dir, { recursive: true, force: true })];
  try {
    const layers: Blob[] = [];
    for (let i = 0; i < layerCount; i++)
      layers.push(await writeRandomBlob(dir, Math.ceil(totalBytes / layerCount)));
    const configPath = join(dir, 'config.json');
    writeFileSync(
      configPath,
      JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] } }),
    );
    const configBytes = statSync(configPath).size;
    const config: Blob = {
      digest: `sha256:${createHash('sha256').update(readFileSync(configPath)).digest('hex')}`,
      size: configBytes,
      path: configPath,
      mediaType: 'application/vnd.oci.image.config.v1+json',
    };
    const total = layers.reduce((sum, l) => sum + l.size, 0);
    console.log(`image: ${layerCount} layers, ${(total / 1e6).toFixed(0)} MB`);

    const cluster = await startBenchCluster(join(dir, 'skiff'), cleanups);
    const skiff: Target = {
      name: 'skiff',
      base: `http://${cluster.httpAddress}`,
      headers: [`Authorization: Bearer ${cluster.token}`],
    };

    const port = await freePort();
    const registryConfig = join(dir, 'docker-registry.yml');
    writeFileSync(
      registryConfig,
      [
        'version: 0.1',
        'log:',
        '  level: error',
        '  accesslog:',
        '    disabled: true',
        'storage:',
        '  cache:',
        '    blobdescriptor: inmemory',
        '  filesystem:',
        `    rootdirectory: ${join(dir, 'docker-registry')}`,
        '  delete:',
        '    enabled: true',
        'http:',
        `  addr: 127.0.0.1:${port}`,
        '',
      ].join('\n'),
    );
    const docker = spawn('docker-registry', ['serve', registryConfig], {
      stdio: ['ignore', 'ignore', 'inherit'],
    });
    cleanups.push(async () => {
      if (docker.exitCode === null) {
        docker.kill('SIGTERM');
        await once(docker, 'exit');
      }
    });
    const dockerTarget: Target = { name: 'docker-registry', base: `http://127.0.0.1:${port}`, headers: [] };
    for (let i = 0; ; i++) {
      if (
        (await fetch(`${dockerTarget.base}/v2/`).then(
          (r) => r.status,
          () => 0,
        )) === 200
      )
        break;
      if (i > 100) throw new Error('docker-registry did not start');
      await new Promise((resolve) => setTimeout(resolve, 100));
    }

    await pushImage(skiff, 'bench/image', config, layers);
    await pushImage(dockerTarget, 'bench/image', config, layers);
    // one warm-up fetch of everything from each (page cache, connection set-up paths)
    await measure(skiff, 'bench/image', layers);
    await measure(dockerTarget, 'bench/image', layers);

    const results = {
      skiff: { sequential: [] as number[], parallel: [] as number[] },
      docker: { sequential: [] as number[], parallel: [] as number[] },
    };
    for (let round = 1; round <= rounds; round++) {
      const order = round % 2 === 1 ? (['skiff', 'docker'] as const) : (['docker', 'skiff'] as const);
      const got: Record<string, { sequential: number; parallel: number }> = {};
      for (const which of order) {
        got[which] = await measure(which === 'skiff' ? skiff : dockerTarget, 'bench/image', layers);
        results[which].sequential.push(got[which].sequential);
        results[which].parallel.push(got[which].parallel);
      }
      console.log(
        `round ${round}: one at a time skiff ${got.skiff!.sequential.toFixed(0)} MB/s, docker-registry ${got.docker!.sequential.toFixed(0)} MB/s (${(got.skiff!.sequential / got.docker!.sequential).toFixed(2)}x); ` +
          `all at once skiff ${got.skiff!.parallel.toFixed(0)} MB/s, docker-registry ${got.docker!.parallel.toFixed(0)} MB/s (${(got.skiff!.parallel / got.docker!.parallel).toFixed(2)}x)`,
      );
    }
    const ratios = (kind: 'sequential' | 'parallel') =>
      results.skiff[kind].map((s, i) => s / results.docker[kind][i]!);
    for (const kind of ['sequential', 'parallel'] as const) {
      console.log(
        `${kind === 'sequential' ? 'one at a time' : 'all at once'}: skiff ${median(results.skiff[kind]).toFixed(0)} MB/s, ` +
          `docker-registry ${median(results.docker[kind]).toFixed(0)} MB/s, ratio ${median(ratios(kind)).toFixed(2)}x ` +
          `(rounds ${Math.min(...ratios(kind)).toFixed(2)}–${Math.max(...ratios(kind)).toFixed(2)}; goal ≥ 1.0)`,
      );
    }
  } finally {
    for (const cleanup of cleanups.reverse()) await cleanup();
  }
}

await main();
