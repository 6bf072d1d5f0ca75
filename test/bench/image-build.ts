/**
 * `skiff image build` of a small multi-step Dockerfile from scratch (a busybox-static root copied
 * in, RUN steps, a COPY, config steps) into an empty runtime root, then the same build again,
 * unchanged: issue 10 asks that the rebuild hits the cache at every step, with its time reported
 * beside the first build's. Both go through the CLI binary, as a user runs them (Node's start
 * and exit included). Not a timed test: it prints the figures.
 *
 * Usage (root): node dist/test/bench/image-build.js [--rounds 3]
 * Needs: apt-get install -y busybox-static
 */
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { skiffEntryArgv } from '../../proto/package-info.js';
import { makeBusyboxRootfs, requireRootAndBusybox } from '../integration/runtime-containers-fixture.js';

const exec = promisify(execFile);

const DOCKERFILE = [
  'FROM scratch',
  'COPY rootfs/ /',
  'ENV PATH=/bin APP=/srv/app',
  'WORKDIR $APP',
  'RUN mkdir -p data && for i in 1 2 3 4 5 6 7 8 9 10; do echo "line $i" >> data/log; done',
  'COPY app/ ./',
  'RUN sha256sum data/log > data/log.sum && rm -rf /tmp && mkdir /tmp',
  "RUN echo 'web:x:1000:1000::/srv/app:/bin/sh' >> /etc/passwd && chown -R 1000:1000 /srv/app",
  'USER web',
  'EXPOSE 8080',
  'CMD ["sh", "/srv/app/start.sh"]',
].join('\n');

async function main(): Promise<void> {
  requireRootAndBusybox();
  const roundsAt = process.argv.indexOf('--rounds');
  const rounds = roundsAt > 0 ? Number(process.argv[roundsAt + 1]) : 3;
  const work = await mkdtemp(join(tmpdir(), 'skiff-bench-build-'));
  try {
    const ctx = join(work, 'ctx');
    await makeBusyboxRootfs(join(ctx, 'rootfs'));
    await makeBusyboxRootfs(join(ctx, 'app'));
    await writeFile(join(ctx, 'app', 'start.sh'), 'echo serving\n');
    await writeFile(join(ctx, 'Dockerfile'), DOCKERFILE);
    const steps = DOCKERFILE.split('\n').length;
    console.log(
      `image-build: ${steps}-step Dockerfile from scratch, ${rounds} rounds, each in an empty root`,
    );
    const ratios: number[] = [];
    for (let round = 1; round <= rounds; round++) {
      const root = join(work, `root-${round}`);
      const build = async () => {
        const started = process.hrtime.bigint();
        const { stdout } = await exec(
          process.execPath,
          [...skiffEntryArgv(), 'image', '--root', root, 'build', '-t', 'bench:1', ctx],
          { encoding: 'utf8', env: { ...process.env, SKIFF_CONFIG: join(work, 'config') } },
        );
        const seconds = Number(process.hrtime.bigint() - started) / 1e9;
        const cached = stdout.split('\n').filter((l) => /^\[\d+\/\d+\].* CACHED$/.test(l)).length;
        return { seconds, cached };
      };
      const first = await build();
      const again = await build();
      ratios.push(again.seconds / first.seconds);
      console.log(
        `round ${round}: first build ${first.seconds.toFixed(2)} s (${first.cached}/${steps} cached), ` +
          `unchanged rebuild ${again.seconds.toFixed(2)} s (${again.cached}/${steps} cached), ` +
          `ratio ${(again.seconds / first.seconds).toFixed(2)}`,
      );
      await exec('rm', ['-rf', root]);
    }
    ratios.sort((a, b) => a - b);
    console.log(`median rebuild/first ratio ${ratios[Math.floor(ratios.length / 2)]!.toFixed(2)}`);
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

await main();
