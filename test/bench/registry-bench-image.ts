/**
 * What the registry client benchmarks share (registry-pull.ts, registry-push.ts): images of random
 * layers (so gzip cannot shrink them), and timing whole processes.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { skiffEntryArgv } from '../../proto/package-info.js';
import { buildImage, type FixtureImage } from '../fixtures/images.js';
import { tar } from '../fixtures/images-tar.js';

/** A layer: a tar of one file of `mb` MiB of random bytes (so the gzip blob is as big). */
export function benchLayer(i: number, mb: number): Buffer {
  return tar([
    { name: 'data/', type: 'dir' },
    { name: `data/layer-${i}.bin`, data: randomBytes(mb << 20) },
  ]);
}

/** The benchmarks' two images: `layers` random layers of `totalMb` MiB, and a second image that
 * shares all but the top one and adds an 8 MiB layer of its own (gzip at level 1: the fixture's
 * level 6 is slow on 200 MB). */
export function benchImages(
  totalMb: number,
  layers: number,
): { first: FixtureImage; second: FixtureImage; total: number; secondOwnBytes: number } {
  process.stdout.write(`building a ${totalMb} MiB image of ${layers} layers…\n`);
  const per = Math.ceil(totalMb / layers);
  const tars = Array.from({ length: layers }, (_, i) => benchLayer(i, per));
  const first = buildImage({ name: 'bench/app:1', layers: tars, gzipLevel: 1 });
  const second = buildImage({
    name: 'bench/app:2',
    layers: [...tars.slice(0, layers - 1), benchLayer(99, 8)],
    gzipLevel: 1,
  });
  return {
    first,
    second,
    total: imageBytes(first),
    secondOwnBytes: second.manifest.length + second.config.length + second.layers.at(-1)!.blob.length,
  };
}

/** Bytes of an image's blobs: manifest, config, layers. */
export function imageBytes(image: FixtureImage): number {
  return image.manifest.length + image.config.length + image.layers.reduce((s, l) => s + l.blob.length, 0);
}

export function run(
  argv: string[],
  env: NodeJS.ProcessEnv = process.env,
): Promise<{ ms: number; stdout: string }> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const child = spawn(argv[0]!, argv.slice(1), { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    child.on('error', reject);
    child.on('close', (code) => {
      const ms = performance.now() - started;
      if (code === 0) resolve({ ms, stdout });
      else reject(new Error(`${argv.join(' ')} exited ${code}: ${stderr}${stdout}`));
    });
  });
}

/** `skiff image --root ROOT ARGS…` as a whole process; with `profileDir`, under node --cpu-prof. */
export function runSkiffImage(
  root: string,
  args: string[],
  env: NodeJS.ProcessEnv,
  profileDir?: string,
): Promise<{ ms: number; stdout: string }> {
  const profile = profileDir ? ['--cpu-prof', '--cpu-prof-dir', profileDir] : [];
  return run([process.execPath, ...profile, ...skiffEntryArgv(), 'image', '--root', root, ...args], env);
}

export const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
