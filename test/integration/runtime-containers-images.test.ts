/**
 * Containers from images: import → unpack → overlay snapshot → container, through the Runtime
 * and through the built `skiff runtime` CLI in separate processes. Everything is removed at the
 * end (containers, snapshots), and nothing stays mounted.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFile, readdir, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { processFromImage, type ImageRuntime } from '../../node-agent/runtime/runtime.js';
import { busyboxImage, manyLayerImage, multiLayerImage } from '../fixtures/images.js';
import {
  openImageRuntimeWith,
  requireRootAndBusybox,
  withScratchRuntime,
} from './runtime-containers-fixture.js';
import { skiffEntryArgv } from '../../proto/package-info.js';

const run = promisify(execFile);

let root: string;
let rt: ImageRuntime;

withScratchRuntime('skiff-ctr-images-', async (work) => {
  requireRootAndBusybox();
  root = join(work, 'root');
  rt = await openImageRuntimeWith(root, join(work, 'images.tar'), [
    busyboxImage('busybox:1'),
    multiLayerImage('multi:1'),
    manyLayerImage(140, 'many:140'),
  ]);
  return rt.runtime.containers;
});

async function output(id: string): Promise<string> {
  let text = '';
  for await (const e of rt.runtime.containers.logs(id)) text += e.text + '\n';
  return text;
}

describe('containers from images', () => {
  test('the merged view honours whiteouts and opaque directories; config gives the command', async () => {
    const c = await rt.runtime.run({
      image: 'multi:1',
      command: ['sh', '-c', 'ls /etc /data | tr "\\n" " "; echo; echo $PATH'],
    });
    const exit = await rt.runtime.containers.wait(c.id);
    assert.equal(exit.exitCode, 0);
    const [listing, path] = (await output(c.id)).trim().split('\n');
    assert.match(listing!, /\/data: c/);
    assert.doesNotMatch(listing!, /doomed/);
    assert.match(listing!, /kept/);
    assert.equal(path, '/bin', 'Env comes from the image config');
    await rt.runtime.containers.remove(c.id);
  });

  test("copy-on-write: writes stay in the container; two containers never see each other's", async () => {
    const a = await rt.runtime.run({
      image: 'busybox:1',
      command: ['sh', '-c', 'echo a > /etc/passwd; echo a > /mine; sleep 100'],
    });
    const b = await rt.runtime.run({
      image: 'busybox:1',
      command: ['sh', '-c', 'sleep 0.3; cat /etc/passwd; cat /mine 2>&1 || true'],
    });
    try {
      await rt.runtime.containers.wait(b.id);
      const seen = await output(b.id);
      assert.match(seen, /^root:x:0:0/, "b sees the image's /etc/passwd, not a's write");
      assert.match(seen, /No such file/);
      const image = await rt.images.resolve('busybox:1');
      const chainId = image.layers[0]!.chainId;
      const info = await rt.images.snapshotter.stat(chainId);
      assert.equal(info.kind, 'committed');
    } finally {
      await rt.runtime.containers.remove(a.id, { force: true });
      await rt.runtime.containers.remove(b.id, { force: true });
    }
  });

  test('rm removes the writable snapshot', async () => {
    const c = await rt.runtime.run({ image: 'busybox:1', command: ['true'] });
    await rt.runtime.containers.wait(c.id);
    const key = c.config.snapshotKey!;
    assert.equal((await rt.images.snapshotter.stat(key)).kind, 'active');
    await rt.runtime.containers.remove(c.id);
    await assert.rejects(rt.images.snapshotter.stat(key), /not|no such/i);
  });

  test("rm leaves no trace of the container's writable layer once the trash is emptied", async () => {
    const c = await rt.runtime.run({ image: 'busybox:1', command: ['sh', '-c', 'echo x > /written'] });
    assert.equal((await rt.runtime.containers.wait(c.id)).exitCode, 0);
    const key = c.config.snapshotKey!;
    await rt.runtime.containers.remove(c.id);
    await assert.rejects(rt.images.snapshotter.stat(key), /no such snapshot/);
    await rt.images.snapshotter.cleanup();
    assert.equal((await rt.images.snapshotter.reclaimable()).size, 0);
    assert.deepEqual(await readdir(join(root, 'snapshots', 'overlay', 'trash')), []);
  });

  test('containers leave no dying memory cgroup behind (the shim makes the root mount)', async () => {
    // what the kernel allocates for an overlay mount (its work directory's block) is charged to
    // the mounting process's memory cgroup: made inside the container's, it kept that cgroup
    // alive, dying, after rmdir (about every other start), slowing every later cgroup operation
    const memoryCgroups = async () => {
      const line = (await readFile('/proc/cgroups', 'utf8'))
        .split('\n')
        .find((l) => l.startsWith('memory\t'));
      return Number(line?.split('\t')[2]);
    };
    // blocks whose pages are still cached are charged to whoever cached them first: start cold
    await writeFile('/proc/sys/vm/drop_caches', '1');
    await new Promise((resolve) => setTimeout(resolve, 500));
    const before = await memoryCgroups();
    for (let i = 0; i < 80; i++) {
      const c = await rt.runtime.run({ image: 'busybox:1', command: ['true'] });
      await rt.runtime.containers.wait(c.id);
      await rt.runtime.containers.remove(c.id);
    }
    const grown = (await memoryCgroups()) - before;
    assert.ok(grown <= 14, `80 containers left ${grown} memory cgroups behind`);
  });

  test('an image with 140 layers runs (overlay options beyond one page)', async () => {
    const c = await rt.runtime.run({ image: 'many:140', command: ['sh', '-c', 'ls /layers | wc -l'] });
    const exit = await rt.runtime.containers.wait(c.id);
    assert.equal(exit.exitCode, 0, await output(c.id));
    assert.equal((await output(c.id)).trim(), '139');
    await rt.runtime.containers.remove(c.id);
  });

  test('image defaults and overrides combine as docker does', () => {
    const cfg = {
      config: {
        Entrypoint: ['/bin/app'],
        Cmd: ['--serve'],
        Env: ['A=1', 'B=2'],
        WorkingDir: '/srv',
        User: '10:20',
      },
    };
    assert.deepEqual(processFromImage(cfg, {}), {
      argv: ['/bin/app', '--serve'],
      env: ['A=1', 'B=2'],
      cwd: '/srv',
      user: '10:20',
    });
    const o = processFromImage(cfg, { command: ['--check'], env: ['B=3', 'C=4'], workdir: '/', user: '0' });
    assert.deepEqual(o.argv, ['/bin/app', '--check']);
    assert.deepEqual(o.env, ['A=1', 'B=3', 'C=4']);
    assert.equal(processFromImage({ config: { User: 'www-data' } }, {}).user, 'www-data');
    assert.throws(() => processFromImage({ config: { User: 'a:b:c' } }, {}), /config\.User/);
  });
});

describe('skiff runtime CLI across processes', () => {
  const cli = skiffEntryArgv();
  const skiff = (...args: string[]) =>
    run(process.execPath, [...process.execArgv, ...cli, 'runtime', '--root', root, ...args], {
      encoding: 'utf8',
    });

  test('run -d, ps, logs, exec, stop, rm from separate processes', async () => {
    const { stdout: id } = await skiff(
      'run',
      '-d',
      '--name',
      'cli-web',
      '--memory',
      '32Mi',
      '--pids-limit',
      '20',
      'busybox:1',
      'sh',
      '-c',
      'echo started; sleep 100',
    );
    assert.match(id.trim(), /^[0-9a-f]{64}$/);
    try {
      const { stdout: ps } = await skiff('ps');
      assert.match(ps, /cli-web/);
      assert.match(ps, /Up /);
      let logs = '';
      for (let i = 0; i < 50 && !logs.includes('started'); i++)
        logs = (await skiff('logs', 'cli-web')).stdout;
      assert.equal(logs, 'started\n');
      const { stdout: host } = await skiff('exec', 'cli-web', '--', 'hostname');
      assert.equal(host.trim(), id.trim().slice(0, 12));
      await skiff('stop', '-t', '1', 'cli-web');
      const { stdout: all } = await skiff('ps', '-a');
      assert.match(all, /Exited \(137\)/);
    } finally {
      await skiff('rm', '-f', 'cli-web');
    }
    const { stdout: after } = await skiff('ps', '-a', '-q');
    assert.doesNotMatch(after, new RegExp(id.trim().slice(0, 12)));
  });

  test("foreground run: output streams and the exit code is the container's; --rm leaves nothing", async () => {
    const before = await readdir(join(root, 'containers'));
    const err = await skiff('run', '--rm', 'busybox:1', 'sh', '-c', 'echo out; echo err >&2; exit 3').then(
      () => assert.fail('expected exit 3'),
      (e: { code: number; stdout: string; stderr: string }) => e,
    );
    assert.equal(err.code, 3);
    assert.equal(err.stdout, 'out\n');
    assert.match(err.stderr, /err\n/);
    assert.deepEqual(await readdir(join(root, 'containers')), before);
    const notFound = await skiff('run', '--rm', 'busybox:1', '/no/such').catch(
      (e: { code: number; stderr: string }) => e,
    );
    assert.equal((notFound as { code: number }).code, 127);
    assert.match((notFound as { stderr: string }).stderr, /exec \/no\/such: No such file/);
  });

  test('bad flags are refused naming the flag, before anything is created', async () => {
    const before = await readdir(join(root, 'containers'));
    for (const [flag, value, pattern] of [
      ['--memory', 'lots', /memory/],
      ['--network', 'bridge', /network/],
      ['--cpus', '99', /cpus/],
      ['-v', 'relative:/x', /host path "relative"/],
    ] as const) {
      const e = await skiff('run', flag, value, 'busybox:1', 'true').catch(
        (x: { code: number; stderr: string }) => x,
      );
      assert.notEqual((e as { code: number }).code ?? 0, 0, `${flag} ${value} must fail`);
      assert.match((e as { stderr: string }).stderr, pattern);
    }
    assert.deepEqual(await readdir(join(root, 'containers')), before);
    await stat(join(root, 'containers'));
    assert.ok((await readFile(join(root, 'images', 'images.json'), 'utf8')).length > 0);
  });
});
