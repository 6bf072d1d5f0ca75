/**
 * `skiff image` and `skiff runtime run` end to end, through the built binary, with real software
 * nobody here wrote: Debian's docker-registry (Distribution 2.8) on a free loopback port (with and
 * without htpasswd auth) and skopeo. What skopeo pushes, `skiff image pull` pulls and `skiff
 * runtime run` runs (gzip and zstd layers); what `skiff image push` pushes, skopeo reads with the
 * same manifest digest. Then the cluster registry: a short name against a real `skiff up`.
 *
 * Needs docker-registry, skopeo and htpasswd (a missing one fails with its apt-get line); root.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  archiveTar,
  busyboxImage,
  multiLayerImage,
  ociLayout,
  writeArchiveDir,
  type FixtureImage,
} from '../fixtures/images.js';
import {
  requireTool,
  runSkopeo,
  startDockerRegistry,
  type TestDockerRegistry,
} from '../harness/docker-registry.js';
import { runSkiff, skiffArgv, startTestCluster, type RunResult } from './cli-harness.js';

function ok(result: RunResult, what: string): RunResult {
  assert.equal(result.code, 0, `${what} failed (exit ${result.code}):\n${result.stderr}${result.stdout}`);
  return result;
}

/** Runs skiff in a pseudo-terminal (util-linux `script`), for the progress bars. */
function inTerminal(args: string[], env: NodeJS.ProcessEnv): Promise<RunResult> {
  const script = requireTool('script', 'bsdutils');
  const command = [process.execPath, ...skiffArgv, ...args]
    .map((a) => `'${a.replace(/'/g, `'\\''`)}'`)
    .join(' ');
  return new Promise((resolve, reject) => {
    const child = spawn(script, ['-qfec', command, '/dev/null'], { env: { ...env, COLUMNS: '120' } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

describe('skiff image: pull, push, run against docker-registry and skopeo', () => {
  let work: string;
  let registry: TestDockerRegistry;
  let env: NodeJS.ProcessEnv;
  let root: string;
  const skiff = (args: string[], timeoutMs = 120_000) => runSkiff(args, { env, timeoutMs });
  const image = (verb: string, ...rest: string[]) => skiff(['image', '--root', root, verb, ...rest]);

  const layout = (...images: FixtureImage[]) => {
    const dir = mkdtempSync(join(work, 'layout-'));
    return writeArchiveDir(dir, ociLayout(images)).then(() => dir);
  };

  before(async () => {
    assert.equal(
      process.getuid?.(),
      0,
      'skiff image uses the runtime store and runs containers: run as root',
    );
    work = mkdtempSync(join(tmpdir(), 'skiff-e2e-image-'));
    root = join(work, 'runtime');
    registry = await startDockerRegistry();
    env = { ...process.env, SKIFF_CONFIG: join(work, 'config'), SKIFF_LOG_LEVEL: 'warn' };
  });
  after(async () => {
    await registry?.stop();
    // containers were all --rm; the root holds only images and snapshots
    rmSync(work, { recursive: true, force: true });
  });

  test('an image skopeo pushed is pulled by `skiff image pull` (plain progress lines) and run by `skiff runtime run`', async () => {
    const busybox = busyboxImage('busybox:1');
    const ref = `${registry.host}/library/busybox:1`;
    await runSkopeo(['copy', '--dest-tls-verify=false', `oci:${await layout(busybox)}:1`, `docker://${ref}`]);
    const pulled = ok(await image('pull', ref), 'skiff image pull');
    assert.match(pulled.stdout, new RegExp(`pull ${ref}: manifest ${busybox.manifestDigest}, 2 blobs`));
    assert.match(pulled.stdout, /layer [0-9a-f]{12}: downloading 1\.\d+MB\n/);
    assert.match(pulled.stdout, /layer [0-9a-f]{12}: done, 1\.\d+MB in \d+\.\ds \([\d.]+[kM]B\/s\)\n/);
    assert.match(pulled.stdout, new RegExp(`Digest: ${busybox.manifestDigest}`));
    const listed = ok(await image('ls', '--digests'), 'skiff image ls');
    assert.match(
      listed.stdout,
      new RegExp(`${registry.host}/library/busybox\\s+1\\s+${busybox.manifestDigest}`),
    );
    const run = ok(
      await skiff(['runtime', '--root', root, 'run', '--rm', ref, 'sh', '-c', 'echo hello from $(hostname)']),
      'skiff runtime run',
    );
    assert.match(run.stdout, /^hello from /);
    // pulled again: nothing fetched
    const again = ok(await image('pull', ref), 'skiff image pull (again)');
    assert.match(again.stdout, /0 blobs fetched, \d+ bytes over the network .*; 2 already present/);
  });

  test('`skiff runtime run` pulls an image it lacks (zstd layers) through the runtime’s puller', async () => {
    const zstd = busyboxImage('bbz:1', 'zstd');
    const ref = `${registry.host}/zstd/busybox:1`;
    await runSkopeo(['copy', '--dest-tls-verify=false', `oci:${await layout(zstd)}:1`, `docker://${ref}`]);
    const run = ok(
      await skiff(['runtime', '--root', root, 'run', '--rm', ref, 'cat', '/etc/group']),
      'skiff runtime run',
    );
    assert.match(run.stderr, new RegExp(`Unable to find image '${ref}' locally`));
    assert.match(run.stderr, new RegExp(`Digest: ${zstd.manifestDigest}`));
    assert.match(run.stdout, /^root:x:0:/);
    const inspected = JSON.parse(ok(await image('inspect', ref), 'inspect').stdout) as {
      layers: { mediaType: string }[];
    }[];
    assert.equal(inspected[0]!.layers[0]!.mediaType, 'application/vnd.oci.image.layer.v1.tar+zstd');
  });

  test('`skiff image push` then skopeo inspect and skopeo copy show the same manifest digest', async () => {
    const multi = multiLayerImage('multi:1');
    const zstd = busyboxImage('bbz:2', 'zstd');
    const archive = join(work, 'images.tar');
    writeFileSync(archive, archiveTar(ociLayout([multi, zstd])));
    const loaded = ok(await image('load', '-i', archive), 'skiff image load');
    assert.match(loaded.stdout, /Loaded image: docker\.io\/library\/multi:1/);
    for (const [local, fixture] of [
      ['multi:1', multi],
      ['bbz:2', zstd],
    ] as const) {
      const ref = `${registry.host}/pushed/${local.replace(':', ':v')}`;
      ok(await image('tag', local, ref), 'skiff image tag');
      const pushed = ok(await image('push', ref), 'skiff image push');
      assert.match(
        pushed.stdout,
        new RegExp(`digest: ${fixture.manifestDigest} size: ${fixture.manifest.length}`),
      );
      const inspected = JSON.parse(
        (await runSkopeo(['inspect', '--tls-verify=false', `docker://${ref}`])).stdout,
      ) as {
        Digest: string;
      };
      assert.equal(inspected.Digest, fixture.manifestDigest, `skopeo inspect ${ref}`);
      const out = mkdtempSync(join(work, 'copied-'));
      await runSkopeo(['copy', '--src-tls-verify=false', `docker://${ref}`, `oci:${out}:copied`]);
      const index = JSON.parse(readFileSync(join(out, 'index.json'), 'utf8')) as {
        manifests: { digest: string }[];
      };
      assert.equal(index.manifests[0]!.digest, fixture.manifestDigest, `skopeo copy ${ref}`);
      const again = ok(await image('push', ref), 'skiff image push (again)');
      assert.match(again.stdout, /Pushed 0 blobs \(0B\) and the manifest; \d+ already in the registry/);
    }
    // and what was pushed runs after a fresh pull
    const fresh = join(work, 'fresh-runtime');
    const ref = `${registry.host}/pushed/multi:v1`;
    ok(await skiff(['image', '--root', fresh, 'pull', ref]), 'pull into an empty runtime');
    const run = ok(await skiff(['runtime', '--root', fresh, 'run', '--rm', ref, 'ls', '/data']), 'run');
    assert.equal(run.stdout, 'c\n');
  });

  test('htpasswd auth: credentials from the client config; without them an error saying where they go', async () => {
    const secured = await startDockerRegistry({ htpasswd: { ci: 's3cret pass' } });
    try {
      const ref = `${secured.host}/private/busybox:1`;
      ok(await image('tag', 'bbz:2', ref), 'tag');
      const refused = await image('push', ref);
      assert.equal(refused.code, 1);
      assert.match(refused.stderr, /wants a user name and password; add them to the client config/);
      writeFileSync(
        env.SKIFF_CONFIG!,
        `registries:\n  "${secured.host}":\n    username: ci\n    password: "s3cret pass"\n`,
        { mode: 0o600 },
      );
      try {
        ok(await image('push', ref), 'push with credentials');
        await runSkopeo(['inspect', '--tls-verify=false', '--creds', 'ci:s3cret pass', `docker://${ref}`]);
        ok(await image('rm', ref), 'rm');
        ok(await image('pull', ref), 'pull with credentials');
        const view = ok(await skiff(['config', 'view']), 'config view');
        assert.doesNotMatch(view.stdout, /s3cret/, 'config view never prints the password');
      } finally {
        rmSync(env.SKIFF_CONFIG!, { force: true });
      }
    } finally {
      await secured.stop();
    }
  });

  test('save, rm, load, inspect, ls; rm of an image a container uses is refused', async () => {
    const ref = `${registry.host}/library/busybox:1`;
    const out = join(work, 'saved.tar');
    ok(await image('save', ref, '-o', out), 'save');
    const before = JSON.parse(ok(await image('inspect', ref), 'inspect').stdout) as {
      manifestDigest: string;
    }[];
    ok(await image('rm', ref), 'rm');
    assert.doesNotMatch(ok(await image('ls'), 'ls').stdout, /library\/busybox/);
    ok(await image('load', '-i', out), 'load');
    const after = JSON.parse(ok(await image('inspect', ref), 'inspect').stdout) as {
      manifestDigest: string;
    }[];
    assert.equal(after[0]!.manifestDigest, before[0]!.manifestDigest);
    const started = ok(
      await skiff(['runtime', '--root', root, 'run', '-d', '--name', 'user', ref, 'sleep', '30']),
      'run -d',
    );
    try {
      const refused = await image('rm', ref);
      assert.equal(refused.code, 1);
      assert.match(refused.stderr, /container user .* uses it; remove the container first/);
    } finally {
      ok(await skiff(['runtime', '--root', root, 'rm', '-f', started.stdout.trim()]), 'rm -f');
    }
    const bad = await image('pull', `${registry.host}/no/such:1`);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /answered 404: MANIFEST_UNKNOWN/);
  });

  test('on a terminal: a bar per layer with bytes and rate', async () => {
    const big = busyboxImage('bb:tty');
    const ref = `${registry.host}/tty/busybox:1`;
    await runSkopeo(['copy', '--dest-tls-verify=false', `oci:${await layout(big)}:tty`, `docker://${ref}`]);
    const fresh = join(work, 'tty-runtime');
    const result = await inTerminal(['image', '--root', fresh, 'pull', ref], env);
    assert.equal(result.code, 0, result.stdout);
    assert.match(result.stdout, /\x1b\[\d+A/, 'redrawn in place');
    assert.match(result.stdout, /[0-9a-f]{12} layer {2}pulled 1\.\d+MB [\d.]+[kM]B\/s/);
    assert.match(result.stdout, /[0-9a-f]{12} config pulled \d+B/);
  });
});

describe('skiff image with the cluster registry (short names)', () => {
  test('push web:1 to the control plane’s /v2/ with the config’s token, pull it into another runtime, run it; build on it, push and run the build', async () => {
    assert.equal(process.getuid?.(), 0, 'run as root');
    const cluster = await startTestCluster('image-cluster');
    const work = mkdtempSync(join(tmpdir(), 'skiff-e2e-image-cluster-'));
    try {
      const config = readFileSync(cluster.configPath, 'utf8');
      const http = /http: (http:\/\/[^\s]+)/.exec(config)?.[1];
      assert.ok(http, `skiff up wrote the HTTP address into the client config:\n${config}`);
      const probe = await fetch(`${http}/v2/`);
      await probe.arrayBuffer();
      assert.notEqual(probe.status, 404, `the control plane serves its registry at ${http}/v2/`);
      const rootA = join(work, 'a');
      const rootB = join(work, 'b');
      const archive = join(work, 'busybox.tar');
      writeFileSync(archive, archiveTar(ociLayout([busyboxImage('web:1', 'zstd')])));
      const run = (args: string[]) => cluster.skiff(args, { timeoutMs: 120_000 });
      ok(await run(['image', '--root', rootA, 'load', '-i', archive]), 'load');
      const pushed = ok(await run(['image', '--root', rootA, 'push', 'web:1']), 'push web:1');
      assert.match(pushed.stdout, /web:1: digest: sha256:/);
      ok(await run(['image', '--root', rootB, 'pull', 'web:1']), 'pull web:1');
      const ran = ok(
        await run(['runtime', '--root', rootB, 'run', '--rm', 'web:1', 'echo', 'from the cluster']),
        'run',
      );
      assert.equal(ran.stdout, 'from the cluster\n');
      // built on one host from the cluster's image, pushed by its short name, run on another
      const context = join(work, 'context');
      mkdirSync(context);
      writeFileSync(join(context, 'hello.txt'), 'hello\n');
      writeFileSync(
        join(context, 'Dockerfile'),
        'FROM web:1\nCOPY hello.txt /hello.txt\nRUN echo built > /built.txt\nCMD ["cat", "/hello.txt", "/built.txt"]\n',
      );
      ok(await run(['image', '--root', rootA, 'build', '-t', 'app:2', context]), 'build app:2');
      ok(await run(['image', '--root', rootA, 'push', 'app:2']), 'push app:2');
      ok(await run(['image', '--root', rootB, 'pull', 'app:2']), 'pull app:2');
      const built = ok(await run(['runtime', '--root', rootB, 'run', '--rm', 'app:2']), 'run app:2');
      assert.equal(built.stdout, 'hello\nbuilt\n');
      // the token matters
      const stale = await runSkiff(['--token', 'not-the-token', 'image', '--root', rootB, 'pull', 'web:1'], {
        env: cluster.env,
      });
      assert.equal(stale.code, 1);
      assert.match(stale.stderr, /refused the token of the client config/);
    } finally {
      rmSync(work, { recursive: true, force: true });
      await cluster.dispose();
    }
  });
});
