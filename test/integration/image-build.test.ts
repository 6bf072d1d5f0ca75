/**
 * `skiff image build` through the real CLI binary, as root, on real overlay snapshots and real
 * containers of skiff's runtime: multi-stage builds, RUN layers (deletions and opaque directories),
 * the config instructions, networks, the cache, reproducibility, failures, escapes, and interop
 * (push to Debian's docker-registry, copy out with skopeo, every layer a valid tar).
 *
 * The base images are the busybox fixture (loaded with `skiff image load`) and `bb:full`, built
 * here FROM scratch with a COPY of a busybox-static root with every applet. No RUN reaches the
 * network: busybox commands only.
 */
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { mkdir, readFile, readdir, rm, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, test } from 'node:test';
import { skiffEntryArgv } from '../../proto/package-info.js';
import { openImageRuntime } from '../../node-agent/runtime/runtime.js';
import { archiveTar, busyboxImage, ociLayout, tar } from '../fixtures/images.js';
import {
  requireTool,
  runSkopeo,
  startDockerRegistry,
  type TestDockerRegistry,
} from '../harness/docker-registry.js';
import {
  makeBusyboxRootfs,
  mountsUnder,
  removeScratch,
  requireRootAndBusybox,
  scratchDir,
} from './runtime-containers-fixture.js';

const exec = promisify(execFile);

let work: string;
let root: string;

interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `skiff ARGS` and returns its exit code and output, whatever the code. */
async function skiff(args: string[], env: Record<string, string> = {}): Promise<Result> {
  try {
    const { stdout, stderr } = await exec(process.execPath, [...skiffEntryArgv(), ...args], {
      encoding: 'utf8',
      env: { ...process.env, SKIFF_CONFIG: join(work, 'skiff-config'), ...env },
      maxBuffer: 64 * 1024 * 1024,
    });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof e.code === 'number' ? e.code : -1, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
  }
}

const image = (...args: string[]) => skiff(['image', '--root', root, ...args]);
const runtime = (...args: string[]) => skiff(['runtime', '--root', root, ...args]);

/** Builds DIR (extra flags first); fails the test with the output when the build fails. */
async function build(dir: string, ...flags: string[]): Promise<Result> {
  const r = await image('build', ...flags, dir);
  assert.equal(r.code, 0, `build failed:\n${r.stdout}\n${r.stderr}`);
  return r;
}

/** A build context holding `files` (path → content). */
async function context(name: string, files: Record<string, string>): Promise<string> {
  const dir = join(work, name);
  for (const [path, text] of Object.entries(files)) {
    await mkdir(join(dir, path, '..'), { recursive: true });
    await writeFile(join(dir, path), text);
  }
  return dir;
}

async function run(ref: string, ...command: string[]): Promise<Result> {
  const r = await runtime('run', '--rm', ref, ...command);
  return r;
}

async function inspect(ref: string) {
  const r = await image('inspect', ref);
  assert.equal(r.code, 0, r.stderr);
  return (
    JSON.parse(r.stdout) as {
      id: string;
      manifestDigest: string;
      config: { config: Record<string, unknown>; diffIds: string[] };
      layers: { digest: string }[];
    }[]
  )[0]!;
}

/** The entries of a layer blob of the local content store (`tar -tvzf`). */
async function layerListing(digest: string): Promise<string> {
  const { stdout } = await exec('tar', ['-tvzf', join(root, 'content/blobs/sha256', digest.slice(7))], {
    encoding: 'utf8',
  });
  return stdout;
}

/** Snapshots, containers and mounts a build may leave: there must be none. */
async function assertNothingLeft(): Promise<void> {
  const rt = await openImageRuntime(root, { snapshotter: 'overlay' });
  const leftovers: string[] = [];
  await rt.images.snapshotter.walk((info) => {
    if (info.key.startsWith('build-') || info.key.includes('-tmp-')) leftovers.push(info.key);
  });
  assert.deepEqual(leftovers, [], 'no build snapshot is left');
  assert.deepEqual(await rt.runtime.containers.list({ all: true }), [], 'no container is left');
  assert.deepEqual(mountsUnder(root), [], 'nothing is mounted');
}

before(async () => {
  requireRootAndBusybox();
  work = await scratchDir('skiff-image-build-');
  root = join(work, 'root');
  await writeFile(join(work, 'busybox.tar'), archiveTar(ociLayout([busyboxImage('busybox:1')])));
  const loaded = await image('load', '-i', join(work, 'busybox.tar'));
  assert.equal(loaded.code, 0, loaded.stderr);
  // a base with every busybox applet (ip, grep, …), built FROM scratch by a COPY of a root dir
  const full = join(work, 'full');
  await makeBusyboxRootfs(join(full, 'rootfs'));
  await writeFile(join(full, 'Dockerfile'), 'FROM scratch\nCOPY rootfs/ /\nENV PATH=/bin\n');
  await build(full, '-t', 'bb:full');
});

after(async () => {
  if (!work) return;
  const rt = await openImageRuntime(root, { snapshotter: 'overlay' }).catch(() => undefined);
  for (const c of (await rt?.runtime.containers.list({ all: true })) ?? [])
    await rt!.runtime.containers.remove(c.id, { force: true }).catch(() => undefined);
  await removeScratch(work);
});

describe('skiff image build', () => {
  test('multi-stage with COPY --from and --target; the result runs with its CMD', async () => {
    const dir = await context('multi', {
      'src/main.sh': 'echo "built from $1"\n',
      Dockerfile: [
        'FROM busybox:1 AS builder',
        'COPY src/main.sh /src/main.sh',
        'RUN mkdir -p /out && sh /src/main.sh builder > /out/result',
        'FROM busybox:1 AS final',
        'COPY --from=builder /out/result /app/result',
        'CMD ["cat", "/app/result"]',
        'FROM final AS extra',
        'RUN echo extra > /app/extra',
      ].join('\n'),
    });
    const full = await build(dir, '-t', 'multi:all');
    assert.match(full.stdout, /\[1\/8\] FROM busybox:1 AS builder/);
    assert.match(full.stdout, /Tagged multi:all/);
    assert.equal((await run('multi:all', 'cat', '/app/extra')).stdout, 'extra\n');

    const target = await build(dir, '-t', 'multi:final', '--target', 'final');
    assert.match(target.stdout, /\[\d\/6\]/, 'only the stages final needs are counted');
    assert.doesNotMatch(target.stdout, /RUN echo extra/);
    const ran = await run('multi:final');
    assert.equal(ran.stdout, 'built from builder\n');
    assert.equal(
      (await run('multi:final', 'ls', '/app')).stdout,
      'result\n',
      'the extra stage is not part of it',
    );
    await assertNothingLeft();
  });

  test('RUN layers: created, modified and deleted files, and rm -rf + mkdir as an opaque directory', async () => {
    const base = await context('fs-base', {
      Dockerfile: [
        'FROM busybox:1',
        'RUN mkdir -p /data/old && echo keep > /data/keep && echo old > /data/old/f && echo before > /etc/motd',
      ].join('\n'),
    });
    await build(base, '-t', 'fs:base');
    const dir = await context('fs', {
      Dockerfile: [
        'FROM fs:base',
        'RUN rm /data/keep && echo after > /etc/motd && echo new > /new',
        'RUN rm -rf /data/old && mkdir /data/old && echo fresh > /data/old/g',
      ].join('\n'),
    });
    await build(dir, '-t', 'fs:1');
    const out = await run('fs:1', 'sh', '-c', 'ls /data; ls /data/old; cat /etc/motd /new');
    assert.equal(out.stdout, 'old\ng\nafter\nnew\n', out.stderr);
    const inspected = await inspect('fs:1');
    const [deletes, opaque] = await Promise.all(
      inspected.layers.slice(-2).map((l) => layerListing(l.digest)),
    );
    assert.match(deletes!, /data\/\.wh\.keep/);
    assert.match(deletes!, /etc\/motd/);
    assert.match(deletes!, / new\n/);
    assert.match(opaque!, /data\/old\/\.wh\.\.wh\.\.opq/);
    assert.match(opaque!, /data\/old\/g/);
    assert.doesNotMatch(
      deletes! + opaque!,
      /proc|sys\/|dev\/|resolv\.conf|hostname|hosts/,
      'no mount points in the layers',
    );
  });

  test('ENV, WORKDIR, USER, CMD, ENTRYPOINT, EXPOSE, LABEL, HEALTHCHECK, STOPSIGNAL, VOLUME in the config and in effect', async () => {
    const dir = await context('config', {
      Dockerfile: [
        'FROM bb:full',
        'ARG GREETING=hello',
        'ENV GREETING=${GREETING} TARGET="the world"',
        'WORKDIR /srv/app',
        'RUN echo "$GREETING $TARGET" > message && chown -R 1000:1000 /srv/app',
        'USER 1000:1000',
        // exec form, after USER: runs as that user, in WORKDIR, with ENV
        'RUN ["sh", "-c", "echo ran-as-$(id -u)-in-$(pwd)-$GREETING >> message"]',
        'ENTRYPOINT ["sh", "-c", "echo $(id -u) $(pwd) $(cat message) \\"$@\\"", "entry"]',
        'CMD ["default-arg"]',
        'EXPOSE 8080 53/udp',
        'LABEL org.example.team=web "with space"="yes"',
        'HEALTHCHECK --interval=5s --retries=2 CMD ["true"]',
        'STOPSIGNAL SIGINT',
        'VOLUME /data',
      ].join('\n'),
    });
    await build(dir, '-t', 'config:1', '--build-arg', 'GREETING=hi');
    const config = (await inspect('config:1')).config.config;
    assert.deepEqual(config.Env, ['PATH=/bin', 'GREETING=hi', 'TARGET=the world']);
    assert.equal(config.WorkingDir, '/srv/app');
    assert.equal(config.User, '1000:1000');
    assert.deepEqual(config.Cmd, ['default-arg']);
    assert.deepEqual(config.ExposedPorts, { '8080/tcp': {}, '53/udp': {} });
    assert.deepEqual(config.Labels, { 'org.example.team': 'web', 'with space': 'yes' });
    assert.deepEqual(config.Healthcheck, { Test: ['CMD', 'true'], Interval: 5_000_000_000, Retries: 2 });
    assert.equal(config.StopSignal, 'SIGINT');
    assert.deepEqual(config.Volumes, { '/data': {} });
    const ran = 'ran-as-1000-in-/srv/app-hi';
    assert.equal((await run('config:1')).stdout, `1000 /srv/app hi the world ${ran} default-arg\n`);
    assert.equal((await run('config:1', 'given')).stdout, `1000 /srv/app hi the world ${ran} given\n`);
  });

  test('RUN shares the machine network by default; --network none leaves only lo', async () => {
    const dir = await context('net', {
      Dockerfile: 'FROM bb:full\nRUN ls /sys/class/net > /nets && ip -o link | cut -d: -f2 > /links\n',
    });
    await build(dir, '-t', 'net:none', '--network', 'none', '--no-cache');
    assert.equal((await run('net:none', 'cat', '/nets', '/links')).stdout, 'lo\n lo\n');
    await build(dir, '-t', 'net:host', '--no-cache');
    const host = (await readdir('/sys/class/net')).sort();
    assert.equal((await run('net:host', 'cat', '/nets')).stdout, host.map((n) => `${n}\n`).join(''));
  });

  test('an unchanged rebuild is CACHED at every step; a changed COPY source invalidates it and what follows', async () => {
    const dir = await context('cache', {
      'a.txt': 'one\n',
      'b.txt': 'bee\n',
      Dockerfile: [
        'FROM busybox:1',
        'COPY b.txt /b.txt',
        'RUN echo ran > /ran',
        'COPY a.txt /a.txt',
        'RUN cat /a.txt > /copy',
        'ENV X=1',
      ].join('\n'),
    });
    const first = await build(dir, '-t', 'cache:1');
    assert.match(first.stdout, /RUN echo ran > \/ran\n/);
    const again = await build(dir, '-t', 'cache:1');
    const steps = again.stdout.split('\n').filter((l) => /^\[\d+\/\d+\]/.test(l));
    assert.equal(steps.length, 6);
    for (const line of steps) assert.match(line, / CACHED$/, line);
    assert.match(again.stdout, /\(6 steps, 6 cached\)/);
    assert.equal((await inspect('cache:1')).id, /Built (sha256:\w+)/.exec(first.stdout)![1]);

    await writeFile(join(dir, 'a.txt'), 'two\n');
    const changed = await build(dir, '-t', 'cache:1');
    const byStep = changed.stdout.split('\n').filter((l) => /^\[\d+\/\d+\]/.test(l));
    assert.deepEqual(
      byStep.map((l) => l.endsWith(' CACHED')),
      [true, true, true, false, false, false],
    );
    assert.equal((await run('cache:1', 'cat', '/copy')).stdout, 'two\n');
    // a change of mtime alone is no change
    await writeFile(join(dir, 'a.txt'), 'two\n');
    assert.match((await build(dir, '-t', 'cache:1')).stdout, /\(6 steps, 6 cached\)/);
  });

  test('two --no-cache builds give the same layer, config and manifest digests (SOURCE_DATE_EPOCH honoured)', async () => {
    const dir = await context('repro', {
      'app/x': 'x\n',
      'app/y/z': 'z\n',
      Dockerfile: [
        'FROM busybox:1',
        'COPY app /app',
        'RUN touch /app/made && mkdir -p /var/cache && echo c > /var/cache/c',
        'WORKDIR /w',
      ].join('\n'),
    });
    await build(dir, '-t', 'repro:1', '--no-cache');
    const one = await inspect('repro:1');
    await new Promise((r) => setTimeout(r, 1100));
    await build(dir, '-t', 'repro:2', '--no-cache');
    const two = await inspect('repro:2');
    assert.deepEqual(two.layers, one.layers);
    assert.equal(two.id, one.id);
    assert.equal(two.manifestDigest, one.manifestDigest);
    assert.match(await layerListing(one.layers.at(-2)!.digest), /1970-01-01 00:00 app\/made/);

    const epoch = { SOURCE_DATE_EPOCH: '1700000000' };
    const a = await skiff(['image', '--root', root, 'build', '-t', 'repro:e1', '--no-cache', dir], epoch);
    const b = await skiff(['image', '--root', root, 'build', '-t', 'repro:e2', '--no-cache', dir], epoch);
    assert.equal(a.code + b.code, 0, a.stderr + b.stderr);
    const [e1, e2] = [await inspect('repro:e1'), await inspect('repro:e2')];
    assert.equal(e1.manifestDigest, e2.manifestDigest);
    assert.notEqual(e1.id, one.id);
    assert.match(await layerListing(e1.layers.at(-2)!.digest), /2023-11-1[45] \d\d:\d\d app\/made/);
  });

  test('a failing RUN stops at its line with its output and exit code, tags nothing and leaves nothing', async () => {
    const dir = await context('fail', {
      Dockerfile: [
        'FROM busybox:1',
        'RUN echo first',
        '',
        'RUN echo "about to fail" && exit 3',
        'RUN echo never',
      ].join('\n'),
    });
    const r = await image('build', '-t', 'fail:1', dir);
    assert.notEqual(r.code, 0);
    assert.match(r.stdout, /about to fail/);
    assert.doesNotMatch(r.stdout, /never/);
    assert.match(
      r.stderr,
      /Dockerfile:4: RUN echo "about to fail" && exit 3: the command exited with code 3/,
    );
    assert.match((await image('inspect', 'fail:1')).stderr, /no such image/);
    await assertNothingLeft();

    const unknown = await context('unknown', { Dockerfile: 'FROM busybox:1\nFROBNICATE x\n' });
    assert.match((await image('build', unknown)).stderr, /Dockerfile:2: unknown instruction: FROBNICATE/);
    const missing = await context('missing', { Dockerfile: 'FROM busybox:1\nCOPY nope.txt /\n' });
    assert.match(
      (await image('build', missing)).stderr,
      /Dockerfile:2: COPY nope\.txt: no such file or directory in the build context/,
    );
    const flag = await context('flag', { Dockerfile: 'FROM busybox:1\nCOPY --owner=1 a /\n' });
    assert.match((await image('build', flag)).stderr, /Dockerfile:2: unknown flag --owner for COPY/);
  });

  test('COPY cannot leave the context: .. and a symlink pointing out are refused', async () => {
    await writeFile(join(work, 'outside-secret'), 'secret\n');
    const dotdot = await context('escape-dotdot', {
      Dockerfile: 'FROM busybox:1\nCOPY ../outside-secret /s\n',
    });
    const r1 = await image('build', '-t', 'escape:1', dotdot);
    assert.notEqual(r1.code, 0);
    assert.match(
      r1.stderr,
      /Dockerfile:2: COPY \.\.\/outside-secret: forbidden path outside the build context/,
    );
    const link = await context('escape-link', { Dockerfile: 'FROM busybox:1\nCOPY link /s\n' });
    await symlink(join(work, 'outside-secret'), join(link, 'link'));
    const r2 = await image('build', '-t', 'escape:2', link);
    assert.notEqual(r2.code, 0);
    assert.match(
      r2.stderr,
      /Dockerfile:2: COPY link: link is a symlink to .*outside-secret, outside the build context; refused/,
    );
    const rel = await context('escape-rel', { Dockerfile: 'FROM busybox:1\nCOPY dir/up /s\n' });
    await mkdir(join(rel, 'dir'));
    await symlink('../../outside-secret', join(rel, 'dir/up'));
    assert.match((await image('build', rel)).stderr, /leaves the build context; refused/);
    assert.match((await image('inspect', 'escape:1')).stderr, /no such image/);
    await assertNothingLeft();
  });

  test('the context’s Dockerfile and .dockerignore are read inside the context: a symlink out is refused', async () => {
    // before, a Dockerfile linked to a host file printed its first line in the parse error
    await writeFile(join(work, 'host-secret'), 'TOPSECRET-line\n');
    const dir = await context('dockerfile-link', { 'docker/Dockerfile.prod': 'FROM busybox:1\nCMD ["x"]\n' });
    await symlink(join(work, 'host-secret'), join(dir, 'Dockerfile'));
    const r = await image('build', dir);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /Dockerfile is a symlink to .*host-secret, outside the build context; refused/);
    assert.doesNotMatch(r.stdout + r.stderr, /TOPSECRET/);
    await rm(join(dir, 'Dockerfile'));
    await symlink('docker/Dockerfile.prod', join(dir, 'Dockerfile'));
    await symlink(join(work, 'host-secret'), join(dir, '.dockerignore'));
    const i = await image('build', dir);
    assert.notEqual(i.code, 0);
    assert.match(
      i.stderr,
      /\.dockerignore: \.dockerignore is a symlink to .*outside the build context; refused/,
    );
    await rm(join(dir, '.dockerignore'));
    await build(dir, '-t', 'dockerfile-link:1');
  });

  test('ADD extracts local archives; --chown, --chmod and .dockerignore with exceptions', async () => {
    const dir = await context('add', {
      'tree/a.txt': 'a\n',
      'tree/sub/b.txt': 'b\n',
      'keep/x.log': 'kept\n',
      'keep/y.log': 'dropped\n',
      'keep/z.txt': 'z\n',
      '.dockerignore': 'keep/*.log\n!keep/x.log\n',
      Dockerfile: [
        'FROM busybox:1',
        'ADD tree.tar.gz /opt/',
        'ADD plain.tar /plain',
        'COPY --chown=nobody:nogroup --chmod=0640 keep /keep/',
        'COPY keep/*.txt /globbed/',
      ].join('\n'),
    });
    await exec('tar', ['-czf', join(dir, 'tree.tar.gz'), '-C', join(dir, 'tree'), '.']);
    await exec('tar', ['-cf', join(dir, 'plain.tar'), '-C', join(dir, 'tree'), 'sub']);
    await build(dir, '-t', 'add:1');
    const out = await run(
      'add:1',
      'sh',
      '-c',
      'cat /opt/a.txt /opt/sub/b.txt /plain/sub/b.txt; ls /keep; stat -c "%U %G %a" /keep/x.log; ls /globbed',
    );
    assert.equal(out.stdout, 'a\nb\nb\nx.log\nz.txt\nnobody nogroup 640\nz.txt\n', out.stderr);
  });

  test('COPY --from resolves the stage’s symlinks inside the stage, never on the host', async () => {
    const dir = await context('from-links', {
      Dockerfile: [
        'FROM busybox:1 AS stage',
        'RUN echo stage-passwd > /passwd-of-stage && ln -s /passwd-of-stage /abs && ln -s ../../../../../../passwd-of-stage /climb && ln -s /etc /etcdir',
        'FROM busybox:1',
        'COPY --from=stage /abs /from-abs',
        'COPY --from=stage /climb /from-climb',
        'COPY --from=stage /etcdir/group /from-dir-link',
      ].join('\n'),
    });
    await build(dir, '-t', 'fromlinks:1');
    const out = await run('fromlinks:1', 'cat', '/from-abs', '/from-climb', '/from-dir-link');
    assert.equal(out.stdout, 'stage-passwd\nstage-passwd\nroot:x:0:\nnogroup:x:65534:\n', out.stderr);
  });

  test('a destination through a symlink to a directory lands in that directory, inside the image', async () => {
    const dir = await context('dest-link', {
      'f.txt': 'f\n',
      Dockerfile: [
        'FROM busybox:1',
        'RUN mkdir -p /usr/lib && ln -s /usr/lib /lib2',
        'COPY f.txt /lib2/',
      ].join('\n'),
    });
    await build(dir, '-t', 'destlink:1');
    const out = await run('destlink:1', 'sh', '-c', 'cat /usr/lib/f.txt; ls -l /lib2 | cut -c1');
    assert.equal(out.stdout, 'f\nl\n', out.stderr);
  });

  test('ADD refuses an archive entry climbing out with .. and one through a symlink, naming the line', async () => {
    const dir = await context('add-hostile', {
      Dockerfile: 'FROM busybox:1\nADD climb.tar /opt/\n',
    });
    await writeFile(join(dir, 'climb.tar'), tar([{ name: '../../evil', data: 'x' }]));
    const climb = await image('build', '-t', 'hostile:1', dir);
    assert.notEqual(climb.code, 0);
    assert.match(
      climb.stderr,
      /Dockerfile:2: ADD climb\.tar: archive entry "\.\.\/\.\.\/evil" climbs out with '\.\.'; refused/,
    );
    await writeFile(
      join(dir, 'climb.tar'),
      tar([
        { name: 'link', type: 'symlink', linkname: '/etc' },
        { name: 'link/evil', data: 'x' },
      ]),
    );
    const through = await image('build', '-t', 'hostile:1', dir);
    assert.notEqual(through.code, 0);
    assert.match(
      through.stderr,
      /Dockerfile:2: ADD climb\.tar \/opt\/: unpack layer sha256:\w+: .*link\/evil.*symlink/,
    );
    assert.match((await image('inspect', 'hostile:1')).stderr, /no such image/);
    await assertNothingLeft();
  });

  test('a RUN or COPY making a file named .wh.* is refused at its line, not turned into a deletion', async () => {
    // before, RUN echo > /.wh.bin built an image without /bin: the layer's .wh.bin is a whiteout
    const dir = await context('wh-names', {
      Dockerfile: 'FROM bb:full\nRUN echo x > /.wh.bin\n',
      'ctx/.wh..wh..opq': 'x\n',
    });
    const r = await image('build', '-t', 'wh:1', dir);
    assert.notEqual(r.code, 0);
    assert.match(
      r.stderr,
      /Dockerfile:2: RUN echo x > \/\.wh\.bin: \.wh\.bin: a name beginning \.wh\. is reserved/,
    );
    await writeFile(join(dir, 'Dockerfile'), 'FROM bb:full\nCOPY ctx/ /etc/\n');
    const c = await image('build', '-t', 'wh:1', dir);
    assert.notEqual(c.code, 0);
    assert.match(
      c.stderr,
      /Dockerfile:2: COPY ctx\/ \/etc\/: etc\/\.wh\.\.wh\.\.opq: a name beginning \.wh\. is reserved/,
    );
    assert.match((await image('inspect', 'wh:1')).stderr, /no such image/);
    await assertNothingLeft();
  });

  test('Ctrl-C during a RUN stops the build: exit 130, nothing tagged, nothing left', async () => {
    const dir = await context('cancel', { Dockerfile: 'FROM busybox:1\nRUN echo started && sleep 60\n' });
    const child = spawn(
      process.execPath,
      [...skiffEntryArgv(), 'image', '--root', root, 'build', '-t', 'cancel:1', dir],
      {
        env: { ...process.env, SKIFF_CONFIG: join(work, 'skiff-config') },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let stdout = '';
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const exited = new Promise<number | null>((resolve) => child.once('close', resolve));
    await new Promise<void>((resolve) =>
      child.stdout.setEncoding('utf8').on('data', (d: string) => {
        stdout += d;
        if (stdout.includes('started\n')) resolve();
      }),
    );
    child.kill('SIGINT');
    assert.equal(await exited, 130, stderr);
    assert.match(stderr, /build cancelled; nothing was tagged/);
    assert.match((await image('inspect', 'cancel:1')).stderr, /no such image/);
    await assertNothingLeft();
  });

  test('interop: a built image pushed to docker-registry is copied out by skopeo, its layers valid tars', async () => {
    requireTool('skopeo', 'skopeo');
    let registry: TestDockerRegistry | undefined;
    try {
      registry = await startDockerRegistry();
      const ref = `${registry.host}/team/app:1`;
      const dir = await context('interop', {
        'hello.txt': 'hello\n',
        Dockerfile: [
          'FROM busybox:1',
          'COPY hello.txt /hello.txt',
          'RUN rm /etc/group && rm -rf /tmp && mkdir /tmp',
        ].join('\n'),
      });
      await build(dir, '-t', ref);
      const pushed = await image('push', ref);
      assert.equal(pushed.code, 0, pushed.stderr);
      const out = join(work, 'skopeo-oci');
      await runSkopeo(['copy', '--src-tls-verify=false', `docker://${ref}`, `oci:${out}:app`]);
      const index = JSON.parse(await readFile(join(out, 'index.json'), 'utf8')) as {
        manifests: { digest: string }[];
      };
      const manifest = JSON.parse(
        await readFile(join(out, 'blobs/sha256', index.manifests[0]!.digest.slice(7)), 'utf8'),
      ) as { layers: { digest: string }[] };
      const listings: string[] = [];
      for (const layer of manifest.layers) {
        const { stdout } = await exec('tar', ['-tzf', join(out, 'blobs/sha256', layer.digest.slice(7))], {
          encoding: 'utf8',
          maxBuffer: 64 * 1024 * 1024,
        });
        listings.push(stdout);
      }
      assert.equal(manifest.layers.length, 3);
      assert.match(listings[0]!, /bin\/busybox/);
      assert.match(listings[1]!, /^hello\.txt$/m);
      assert.match(listings[2]!, /^etc\/\.wh\.group$/m);
      assert.match(listings[2]!, /^tmp\/\.wh\.\.wh\.\.opq$/m);

      // a FROM of an image the store lacks is pulled by the registry client, as `skiff image pull`
      assert.equal((await image('rm', ref)).code, 0);
      const pulled = await context('from-registry', { Dockerfile: `FROM ${ref}\nRUN cat /hello.txt\n` });
      const r = await build(pulled, '-t', 'pulled:1');
      assert.match(r.stderr, new RegExp(`Unable to find image '${ref}' locally`));
      assert.match(r.stdout, /\[2\/2\] RUN cat \/hello\.txt\nhello\n/);
    } finally {
      await registry?.stop();
    }
  });
});
