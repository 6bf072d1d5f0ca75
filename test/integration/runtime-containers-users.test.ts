/**
 * Users and groups by name, resolved as Docker does from the image's own /etc/passwd and
 * /etc/group (inside the container, by skiff-helper): `-u NAME|UID[:GROUP|GID]`, the image's
 * USER, `--group-add`, HOME from passwd; and images whose files are hostile (links out of the
 * root, a fifo, a directory, 10 MiB, a very long line). Real containers from busybox images,
 * through the Runtime and through the `skiff runtime` CLI in separate processes.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { type ImageRuntime, type RunOptions } from '../../node-agent/runtime/runtime.js';
import { FailedPreconditionError, InvalidArgumentError } from '../../proto/errors.js';
import {
  buildImage,
  busyboxLayerEntries,
  sorted,
  type FixtureImage,
  type TarEntry,
} from '../fixtures/images.js';
import {
  mountsUnder,
  openImageRuntimeWith,
  requireRootAndBusybox,
  withScratchRuntime,
} from './runtime-containers-fixture.js';
import { skiffEntryArgv } from '../../proto/package-info.js';

const execFileAsync = promisify(execFile);

const PASSWD = [
  'root:x:0:0:root:/root:/bin/sh',
  'nobody:x:65534:65534:nobody:/nonexistent:/bin/false',
  '# a comment, then a blank line and a malformed entry that must never match',
  '',
  'broken:x:notanumber:0::/:/bin/sh',
  'app:x:1000:1000:App:/home/app:/bin/sh',
  'worker:x:1001:1001::/srv/worker:/bin/sh',
].join('\n');

const GROUP = [
  'root:x:0:',
  'wheel:x:10:root',
  'audio:x:29:app',
  'staff:x:50:worker,app',
  'app:x:1000:',
  'worker:x:1001:',
  'nogroup:x:65534:',
].join('\n');

/** busybox, then a layer with the users above (and extra entries, or replacements, per image). */
function usersImage(name: string, extra: TarEntry[] = [], user?: string): FixtureImage {
  const entries: TarEntry[] = [
    { name: 'etc/', type: 'dir' },
    { name: 'etc/group', data: GROUP },
    { name: 'home/', type: 'dir' },
    { name: 'home/app/', type: 'dir', uid: 1000, gid: 1000 },
  ];
  const replaced = new Set(extra.map((e) => e.name.replace(/\/$/, '')));
  if (!replaced.has('etc/passwd')) entries.push({ name: 'etc/passwd', data: PASSWD });
  return buildImage({
    name,
    layers: [busyboxLayerEntries(), sorted([...entries, ...extra])],
    editConfig: (c) => {
      if (user !== undefined) (c.config as Record<string, unknown>).User = user;
    },
  });
}

let work: string;
let root: string;
let hostSecret: string;
let rt: ImageRuntime;

withScratchRuntime('skiff-ctr-users-', async (dir) => {
  requireRootAndBusybox();
  work = dir;
  root = join(work, 'root');
  // a host file an image's link might aim at: its users must never be seen in a container
  hostSecret = join(work, 'host-shadow');
  await writeFile(hostSecret, 'hostonly:x:4242:4242::/host-home:/bin/sh\n', { mode: 0o600 });
  const images = [
    usersImage('users:1'),
    usersImage('users-app:1', [], 'app'),
    usersImage('users-missing:1', [], 'nginx'),
    usersImage('link-abs:1', [{ name: 'etc/passwd', type: 'symlink', linkname: hostSecret }]),
    usersImage('link-rel:1', [
      { name: 'etc/passwd', type: 'symlink', linkname: `../../../../../../../..${hostSecret}` },
    ]),
    usersImage('link-inside:1', [
      { name: 'lib/', type: 'dir' },
      { name: 'lib/passwd', data: 'root:x:0:0::/root:/bin/sh\nlinked:x:777:778::/linked:/bin/sh\n' },
      { name: 'etc/passwd', type: 'symlink', linkname: '../lib/passwd' },
    ]),
    usersImage('link-magic:1', [
      { name: 'etc/passwd', type: 'symlink', linkname: '/proc/self/root/etc/group' },
    ]),
    usersImage('fifo:1', [{ name: 'etc/passwd', type: 'fifo' }]),
    usersImage('dir:1', [
      { name: 'etc/passwd/', type: 'dir' },
      { name: 'etc/passwd/x', data: 'x' },
    ]),
    usersImage('big:1', [
      { name: 'etc/passwd', data: Buffer.alloc(10 * 1024 * 1024, 'u:x:1:1::/:/bin/sh\n') },
    ]),
    usersImage('long-line:1', [
      { name: 'etc/passwd', data: `root:x:0:0::/root:/bin/sh\n${'a'.repeat(100_000)}:x:5:5::/:/bin/sh\n` },
    ]),
  ];
  rt = await openImageRuntimeWith(root, join(work, 'images.tar'), images);
  return rt.runtime.containers;
});

const SHOW_IDENTITY = [
  'sh',
  '-c',
  'grep -E "^(Uid|Gid|Groups):" /proc/self/status | tr -s "\\t " "  "; echo "HOME $HOME"',
];

interface Identity {
  uid: number;
  gid: number;
  groups: number[];
  home: string;
}

/** Runs SHOW_IDENTITY in a container of `image` as asked; the identity the kernel gave it. */
async function identity(image: string, opts: Partial<RunOptions> = {}): Promise<Identity> {
  const c = await rt.runtime.run({ image, command: SHOW_IDENTITY, ...opts });
  try {
    const exit = await rt.runtime.containers.wait(c.id, { timeoutMs: 30_000 });
    let out = '';
    for await (const e of rt.runtime.containers.logs(c.id)) out += e.text + '\n';
    assert.equal(exit.exitCode, 0, out);
    const line = (key: string) => out.split('\n').find((l) => l.startsWith(key)) ?? '';
    const numbers = (key: string) =>
      line(key).slice(key.length).trim().split(' ').filter(Boolean).map(Number);
    const [uid] = numbers('Uid:');
    const [gid] = numbers('Gid:');
    assert.deepEqual(new Set(numbers('Uid:')).size, 1, 'real, effective, saved and fs uid agree');
    assert.deepEqual(new Set(numbers('Gid:')).size, 1, 'real, effective, saved and fs gid agree');
    return { uid: uid!, gid: gid!, groups: numbers('Groups:'), home: line('HOME ').slice(5) };
  } finally {
    await rt.runtime.containers.remove(c.id, { force: true });
  }
}

/** A run that must fail to start: its error, and what it left (a record marked exited, nothing else). */
async function failedStart(image: string, opts: Partial<RunOptions> = {}): Promise<Error> {
  const before = new Set((await rt.runtime.containers.list({ all: true })).map((c) => c.id));
  const err = await rt.runtime.run({ image, command: ['true'], ...opts }).then(
    () => assert.fail(`${image} ${JSON.stringify(opts)} started`),
    (e: Error) => e,
  );
  const left = (await rt.runtime.containers.list({ all: true })).filter((c) => !before.has(c.id));
  assert.equal(left.length, 1, 'the container record stays, for inspection');
  const c = left[0]!;
  try {
    assert.equal(c.state.status, 'exited');
    assert.equal(c.state.reason, 'StartError');
    assert.equal(c.state.error, err.message);
    assert.equal(await rt.runtime.containers.cgroups.exists(c.id), false, 'no cgroup is left');
    assert.deepEqual(mountsUnder(work), [], 'no mount is left');
  } finally {
    await rt.runtime.containers.remove(c.id, { force: true });
  }
  return err;
}

describe('users and groups from the image', () => {
  test('-u NAME: uid, primary gid and HOME from /etc/passwd; groups that list the user', async () => {
    assert.deepEqual(await identity('users:1', { user: 'nobody' }), {
      uid: 65534,
      gid: 65534,
      groups: [65534],
      home: '/nonexistent',
    });
    assert.deepEqual(await identity('users:1', { user: 'app' }), {
      uid: 1000,
      gid: 1000,
      groups: [29, 50, 1000],
      home: '/home/app',
    });
  });

  test('-u NAME:GROUP and -u UID:GROUP: the group given is the primary one, and the only one', async () => {
    assert.deepEqual(await identity('users:1', { user: 'nobody:nogroup' }), {
      uid: 65534,
      gid: 65534,
      groups: [65534],
      home: '/nonexistent',
    });
    assert.deepEqual(await identity('users:1', { user: '1000:staff' }), {
      uid: 1000,
      gid: 50,
      groups: [50],
      home: '/home/app',
    });
    assert.deepEqual(await identity('users:1', { user: 'worker:1234' }), {
      uid: 1001,
      gid: 1234,
      groups: [1234],
      home: '/srv/worker',
    });
  });

  test("the image's USER name; the default user is root with root's groups", async () => {
    assert.deepEqual(await identity('users-app:1'), {
      uid: 1000,
      gid: 1000,
      groups: [29, 50, 1000],
      home: '/home/app',
    });
    assert.deepEqual(await identity('users:1'), { uid: 0, gid: 0, groups: [0, 10], home: '/root' });
    const c = await rt.runtime.run({ image: 'users-app:1', command: ['true'] });
    await rt.runtime.containers.wait(c.id);
    const info = await rt.runtime.containers.inspect(c.id);
    assert.equal(info.config.user, 'app', 'inspect shows the user as given');
    assert.equal(info.config.uid, undefined);
    await rt.runtime.containers.remove(c.id);
  });

  test('a numeric uid absent from /etc/passwd runs with gid 0 (or the given gid) and HOME=/', async () => {
    assert.deepEqual(await identity('users:1', { user: '4242' }), {
      uid: 4242,
      gid: 0,
      groups: [0],
      home: '/',
    });
    assert.deepEqual(await identity('users:1', { user: '4242:77' }), {
      uid: 4242,
      gid: 77,
      groups: [77],
      home: '/',
    });
    // a uid that passwd names takes its entry, as a name would
    assert.deepEqual(await identity('users:1', { user: '1000' }), {
      uid: 1000,
      gid: 1000,
      groups: [29, 50, 1000],
      home: '/home/app',
    });
  });

  test('HOME from the environment wins over passwd', async () => {
    const id = await identity('users:1', { user: 'app', env: ['HOME=/elsewhere'] });
    assert.equal(id.home, '/elsewhere');
  });

  test("--group-add adds groups by name or number to the user's own", async () => {
    assert.deepEqual(await identity('users:1', { user: 'nobody', groupAdd: ['audio', '4000', 'staff'] }), {
      uid: 65534,
      gid: 65534,
      groups: [29, 50, 4000, 65534],
      home: '/nonexistent',
    });
    assert.deepEqual((await identity('users:1', { user: '4242:77', groupAdd: ['77', '5'] })).groups, [5, 77]);
  });

  test('an unknown user or group fails the start, saying which and where; nothing is left', async () => {
    const noUser = await failedStart('users:1', { user: 'nginx' });
    assert.ok(noUser instanceof FailedPreconditionError);
    assert.match(
      noUser.message,
      /^start container \S+: user: no user "nginx" in \/etc\/passwd of the image$/,
    );
    const noGroup = await failedStart('users:1', { user: 'app:nosuch' });
    assert.match(noGroup.message, /user: no group "nosuch" in \/etc\/group of the image$/);
    const noAdded = await failedStart('users:1', { user: 'app', groupAdd: ['audio', 'nosuch'] });
    assert.match(noAdded.message, /user: no group "nosuch" \(an added group\) in \/etc\/group of the image$/);
    const fromImage = await failedStart('users-missing:1');
    assert.match(fromImage.message, /user: no user "nginx" in \/etc\/passwd of the image$/);
  });

  test('bad syntax is refused before anything is created, the field named', async () => {
    const before = (await rt.runtime.containers.list({ all: true })).length;
    await assert.rejects(
      rt.runtime.run({ image: 'users:1', command: ['true'], user: 'a:b:c' }),
      (e: unknown) => e instanceof InvalidArgumentError && e.field === 'user',
    );
    await assert.rejects(
      rt.runtime.run({ image: 'users:1', command: ['true'], groupAdd: ['bad group'] }),
      (e: unknown) => e instanceof InvalidArgumentError && e.field === 'group-add[0]',
    );
    assert.equal((await rt.runtime.containers.list({ all: true })).length, before);
  });

  test('exec -u NAME resolves in the running container', async () => {
    const c = await rt.runtime.run({ image: 'users:1', command: ['sleep', '100'], groupAdd: ['wheel'] });
    try {
      const out = join(work, 'exec-out');
      const { openSync, closeSync, readFileSync } = await import('node:fs');
      const fd = openSync(out, 'w');
      const h = await rt.runtime.containers.exec(c.id, {
        argv: ['sh', '-c', 'id -u; id -g; tr -s "\\t " "  " < /proc/self/status | grep ^Groups:; echo $HOME'],
        user: 'app',
        stdio: ['ignore', fd, 'inherit'],
      });
      closeSync(fd);
      assert.equal(await h.exited, 0);
      assert.deepEqual(readFileSync(out, 'utf8').trim().split('\n'), [
        '1000',
        '1000',
        'Groups: 10 29 50 1000 ',
        '/home/app',
      ]);
      await assert.rejects(
        rt.runtime.containers.exec(c.id, { argv: ['true'], user: 'nginx', stdio: 'ignore' }),
        /exec in container \S+: user: no user "nginx" in \/etc\/passwd of the image/,
      );
    } finally {
      await rt.runtime.containers.remove(c.id, { force: true });
    }
  });
});

describe("hostile /etc/passwd: resolved inside the container's root or refused", () => {
  test('a link to a host path finds nothing: the host file is never read', async () => {
    for (const image of ['link-abs:1', 'link-rel:1']) {
      const err = await failedStart(image, { user: 'hostonly' });
      assert.match(
        err.message,
        /user: no user "hostonly" in \/etc\/passwd of the image \(it has none\)$/,
        image,
      );
      // a uid the host file names is unknown in the container
      assert.deepEqual(await identity(image, { user: '4242' }), {
        uid: 4242,
        gid: 0,
        groups: [0],
        home: '/',
      });
    }
  });

  test('a link inside the root is followed there', async () => {
    assert.deepEqual(await identity('link-inside:1', { user: 'linked' }), {
      uid: 777,
      gid: 778,
      groups: [778],
      home: '/linked',
    });
  });

  test('a link through /proc is refused', async () => {
    const err = await failedStart('link-magic:1', { user: 'root' });
    assert.match(err.message, /user: open \/etc\/passwd of the image: Too many levels of symbolic links$/);
  });

  test('a fifo or a directory is refused for a name, without hanging; a number runs as runc runs it', async () => {
    const fifo = await failedStart('fifo:1', { user: 'app' });
    assert.match(fifo.message, /user: \/etc\/passwd of the image is a fifo; refused$/);
    const dir = await failedStart('dir:1', { user: 'app' });
    assert.match(dir.message, /user: \/etc\/passwd of the image is a directory; refused$/);
    // a uid needs no entry: what the image did to its files does not stop it (gid 0, HOME=/)
    for (const image of ['fifo:1', 'dir:1']) {
      assert.deepEqual(await identity(image), { uid: 0, gid: 0, groups: [0], home: '/' }, image);
      assert.deepEqual(
        await identity(image, { user: '1000' }),
        { uid: 1000, gid: 0, groups: [0], home: '/' },
        image,
      );
    }
  });

  test('UID:GID with HOME set reads no file at all (the fifo is never opened)', async () => {
    assert.deepEqual(await identity('fifo:1', { user: '1000:1000', env: ['HOME=/h'], groupAdd: ['7'] }), {
      uid: 1000,
      gid: 1000,
      groups: [7, 1000],
      home: '/h',
    });
  });

  test('a 10 MiB file is refused for a name, the limit said; a very long line is skipped, never read', async () => {
    const big = await failedStart('big:1', { user: 'app' });
    assert.match(
      big.message,
      /user: \/etc\/passwd of the image is 10485760 bytes, above the limit of 1048576 \(1 MiB\); refused$/,
    );
    assert.deepEqual(await identity('big:1'), { uid: 0, gid: 0, groups: [0], home: '/' });
    // the entries around an over-long line are found; the line itself matches nothing
    assert.deepEqual(await identity('long-line:1'), { uid: 0, gid: 0, groups: [0, 10], home: '/root' });
    const long = await failedStart('long-line:1', { user: 'ghost' });
    assert.match(long.message, /user: no user "ghost" in \/etc\/passwd of the image$/);
  });

  test('a container that writes a 300 KB line into its own /etc/passwd can still be exec-ed into', async () => {
    const c = await rt.runtime.run({
      image: 'users:1',
      command: [
        'sh',
        '-c',
        `head -c 300000 /dev/zero | tr '\\0' x >> /etc/passwd; echo >> /etc/passwd; echo written; sleep 60`,
      ],
    });
    try {
      const { openSync, closeSync, readFileSync } = await import('node:fs');
      for (let waited = 0; ; waited += 50) {
        let logged = '';
        for await (const e of rt.runtime.containers.logs(c.id)) logged += e.text;
        if (logged.includes('written')) break;
        assert.ok(waited < 10_000, 'the container wrote its line within 10 s');
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      const out = join(work, 'exec-after-long-line.txt');
      const fd = openSync(out, 'w');
      const h = await rt.runtime.containers.exec(c.id, {
        argv: ['sh', '-c', 'wc -c < /etc/passwd; echo "HOME $HOME"; id -u'],
        stdio: ['ignore', fd, fd],
      });
      closeSync(fd);
      assert.equal(await h.exited, 0, readFileSync(out, 'utf8'));
      const [size, home, uid] = readFileSync(out, 'utf8').trim().split('\n');
      assert.ok(Number(size) > 300_000, `the line was written (${size} bytes)`);
      assert.equal(home, 'HOME /root');
      assert.equal(uid, '0');
    } finally {
      await rt.runtime.containers.remove(c.id, { force: true });
    }
  });
});

describe('skiff runtime CLI: -u, --group-add, exec -u', () => {
  const cli = skiffEntryArgv();
  const skiff = (...args: string[]) =>
    execFileAsync(process.execPath, [...process.execArgv, ...cli, 'runtime', '--root', root, ...args], {
      encoding: 'utf8',
    });

  test('run -u NAME --group-add; exec -u NAME', async () => {
    const { stdout } = await skiff('run', '--rm', '-u', 'nobody', '--group-add', 'audio', 'users:1', 'id');
    assert.equal(stdout, 'uid=65534(nobody) gid=65534(nogroup) groups=29(audio),65534(nogroup)\n');
    const { stdout: id } = await skiff('run', '-d', '--name', 'users-cli', 'users:1', 'sleep', '100');
    try {
      const { stdout: inside } = await skiff('exec', '-u', 'worker', 'users-cli', '--', 'id');
      assert.equal(inside, 'uid=1001(worker) gid=1001(worker) groups=50(staff),1001(worker)\n');
      const { stdout: inspect } = await skiff('inspect', 'users-cli');
      assert.equal(JSON.parse(inspect)[0].config.user, '');
    } finally {
      await skiff('rm', '-f', id.trim());
    }
  });

  test('an unknown user: a clear error and a non-zero exit', async () => {
    const err = await skiff('run', '--rm', '-u', 'nginx', 'users:1', 'true').then(
      () => assert.fail('expected a failure'),
      (e: { code: number; stderr: string }) => e,
    );
    assert.equal(err.code, 125);
    assert.match(
      err.stderr,
      /error: start container \S+: user: no user "nginx" in \/etc\/passwd of the image\n/,
    );
    const bad = await skiff('run', '--rm', '-u', 'a b', 'users:1', 'true').then(
      () => assert.fail('expected a failure'),
      (e: { code: number; stderr: string }) => e,
    );
    assert.equal(bad.code, 125);
    assert.match(bad.stderr, /error: user: "a b" must be NAME\|UID\[:GROUP\|GID\]/);
  });
});
