/**
 * Layer unpack throughput: skiff's unpacker (gunzip + blob digest + DiffID in Node, extraction in
 * skiff-unpack) against GNU `tar -xzf` of the same layer, interleaved in the same run, each into
 * a fresh directory (rm + sync before each run, untimed), as ../../shared/reference-bench/unpack.sh.
 * The layer is a fixed-seed sample of /usr (regular files and symlinks) of SRC_MB MiB.
 *
 *   node --import tsx test/bench/unpack.ts        (env: SRC_MB=200, N=5, W=/tmp/skiff-bench-unpack)
 * Goal (issue 3): skiff throughput >= 0.8x tar's, i.e. time ratio tar/skiff >= 0.8.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { createReadStream, mkdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { applyLayer } from '../../node-agent/runtime/images/layer-unpack.js';
import type { Digest } from '../../proto/oci/digest.js';

const SRC_MB = Number(process.env.SRC_MB ?? 200);
const N = Number(process.env.N ?? 5);
const W = process.env.W ?? '/tmp/skiff-bench-unpack';

function sha256File(path: string): Digest {
  const out = execFileSync('sha256sum', [path], { encoding: 'utf8' });
  return `sha256:${out.slice(0, 64)}`;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
}

function buildLayer(): { tarGz: string; tar: string; files: number } {
  rmSync(W, { recursive: true, force: true });
  mkdirSync(W, { recursive: true });
  // the same fixed-seed sample as the reference script (awk srand(42)), so figures compare
  const script = String.raw`find /usr -xdev \( -type f -o -type l \) -printf '%s\t%p\n' 2>/dev/null | LC_ALL=C sort -t$'\t' -k2 |
    awk -F'\t' 'BEGIN{srand(42)} {printf "%.9f\t%s\n", rand(), $0}' | sort -g |
    awk -F'\t' -v lim=${SRC_MB * 1048576} 's<lim {s+=$2; print $3}' | LC_ALL=C sort`;
  const picked = execFileSync('bash', ['-c', script], { encoding: 'utf8', maxBuffer: 1 << 30 })
    .trim()
    .split('\n');
  writeFileSync(join(W, 'sample.lst'), picked.join('\n') + '\n');
  const tar = join(W, 'layer.tar');
  spawnSync('tar', ['-cf', tar, '--no-recursion', '-T', join(W, 'sample.lst')], { stdio: 'ignore' });
  execFileSync('bash', ['-c', `gzip -6 -c ${tar} > ${tar}.gz`]);
  return { tarGz: `${tar}.gz`, tar, files: picked.length };
}

function fresh(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  spawnSync('sync');
}

async function main(): Promise<void> {
  const { tarGz, tar, files } = buildLayer();
  const tarBytes = statSync(tar).size;
  const gzBytes = statSync(tarGz).size;
  const digest = sha256File(tarGz);
  const diffId = sha256File(tar);
  console.log(
    `# layer: ${files} entries, tar ${(tarBytes / 2 ** 20).toFixed(0)} MiB, tar.gz ${(gzBytes / 2 ** 20).toFixed(0)} MiB; ${N} rounds + warm-up`,
  );
  const x = join(W, 'x');
  const times = { tar: [] as number[], skiff: [] as number[] };
  for (let round = 0; round <= N; round++) {
    fresh(x);
    let t0 = process.hrtime.bigint();
    execFileSync('tar', ['-xzf', tarGz, '-C', x]);
    const tTar = Number(process.hrtime.bigint() - t0) / 1e6;
    fresh(x);
    t0 = process.hrtime.bigint();
    await applyLayer(createReadStream(tarGz, { highWaterMark: 1 << 20 }), {
      dir: x,
      whiteouts: 'overlay',
      digest,
      diffId,
      compression: 'gzip',
    });
    const tSkiff = Number(process.hrtime.bigint() - t0) / 1e6;
    if (round > 0) {
      times.tar.push(tTar);
      times.skiff.push(tSkiff);
    }
    console.log(
      `round ${round}${round === 0 ? ' (warm-up)' : ''}: tar -xzf ${tTar.toFixed(0)} ms, skiff ${tSkiff.toFixed(0)} ms`,
    );
  }
  rmSync(W, { recursive: true, force: true });
  const ratios = times.tar.map((t, i) => t / times.skiff[i]!);
  const mt = median(times.tar);
  const ms = median(times.skiff);
  console.log(`| figure | median ms | MB/s of .tar |`);
  console.log(`|---|---|---|`);
  console.log(`| tar -xzf | ${mt.toFixed(0)} | ${(tarBytes / 1e6 / (mt / 1000)).toFixed(0)} |`);
  console.log(
    `| skiff unpack (gunzip + 2 digests + extract) | ${ms.toFixed(0)} | ${(tarBytes / 1e6 / (ms / 1000)).toFixed(0)} |`,
  );
  console.log(`throughput ratio skiff/tar (paired median): ${median(ratios).toFixed(3)} (goal >= 0.8)`);
}

await main();
