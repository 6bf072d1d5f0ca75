import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, chown, mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import {
  AlreadyExistsError,
  FailedPreconditionError,
  InvalidArgumentError,
  SkiffError,
  UnavailableError,
} from '../../proto/errors.js';
import { EncryptingStore } from '../store/encrypting-store.js';
import { MemoryStore } from '../store/memory-store.js';
import { rotateEncryptionKey } from '../store/rotate-encryption-key.js';
import type { ObjectKey, StoredValue, WriteOptions } from '../store/store.js';
import { CertificateAuthority } from '../../proto/support/pki.js';
import {
  LocalEncryptionConfig,
  newEncryptionKey,
  parseEncryptionConfig,
  readEncryptionConfig,
  renderEncryptionConfig,
  writeEncryptionConfig,
  type EncryptionConfig,
} from '../store/encryption-config.js';
import { openBootstrap, sealBootstrap } from './bootstrap-data.js';
import {
  BOOTSTRAP_KEY,
  bootstrapCluster,
  readServerToken,
  type ClusterBootstrap,
  type ClusterBootstrapOptions,
} from './cluster-bootstrap.js';

const log = pino({ level: 'silent' });
// the lowest count a record may ask for: the tests need no more
const ITERATIONS = 100_000;

const roots: string[] = [];
after(async () => {
  for (const root of roots) await rm(root, { recursive: true, force: true });
});

/** A control plane's files, in a directory of their own. */
async function controlPlaneFiles(): Promise<
  Pick<ClusterBootstrapOptions, 'serverTokenFile' | 'caDir' | 'encryptionConfigFile' | 'generationFile'>
> {
  const root = await mkdtemp(join(tmpdir(), 'skiff-bootstrap-'));
  roots.push(root);
  return {
    serverTokenFile: join(root, 'server-token'),
    caDir: join(root, 'pki'),
    encryptionConfigFile: join(root, 'encryption-config.yaml'),
    generationFile: join(root, 'bootstrap-generation'),
  };
}

/** etcd whose creates are applied but whose answer is lost, as `failure` says. */
class AnswerLostStore extends MemoryStore {
  losing = true;
  constructor(private readonly failure: () => Error) {
    super();
  }
  override async create(key: ObjectKey, value: Uint8Array, options?: WriteOptions): Promise<StoredValue> {
    const stored = await super.create(key, value, options);
    if (!this.losing) return stored;
    throw this.failure();
  }
}

test('a first start whose create was applied but whose answer was lost keeps the record and its token', async () => {
  const store = new AnswerLostStore(
    () => new UnavailableError('create bootstrap cluster: no answer within 5000 ms'),
  );
  const files = await controlPlaneFiles();
  const started = await bootstrapCluster({ store, etcd: 'e', log, iterations: ITERATIONS, ...files });
  assert.equal(started.created, true);
  assert.equal((await readFile(files.serverTokenFile, 'utf8')).trim(), started.serverToken);
  // the next start opens the record with the file's token
  store.losing = false;
  const again = await bootstrapCluster({ store, etcd: 'e', log, iterations: ITERATIONS, ...files });
  assert.equal(again.created, false);
  assert.equal(again.ca.certificatePem, started.ca.certificatePem);
});

test("a create retried on another endpoint finds its own record (already exists): it is this start's", async () => {
  const store = new AnswerLostStore(() => new AlreadyExistsError('create bootstrap cluster: already exists'));
  const files = await controlPlaneFiles();
  const started = await bootstrapCluster({ store, etcd: 'e', log, iterations: ITERATIONS, ...files });
  assert.equal(started.created, true);
  assert.equal((await readFile(files.serverTokenFile, 'utf8')).trim(), started.serverToken);
});

test('a create that failed and left no record removes the token file it made', async () => {
  const store = new (class extends MemoryStore {
    override async create(): Promise<StoredValue> {
      throw new UnavailableError('create bootstrap cluster: etcd refused: no leader');
    }
  })();
  const files = await controlPlaneFiles();
  await assert.rejects(
    bootstrapCluster({ store, etcd: 'e', log, iterations: ITERATIONS, ...files }),
    /no leader/,
  );
  assert.equal(existsSync(files.serverTokenFile), false);
});

test('when etcd cannot be read after a failed create, the token file stays: the record may be sealed with it', async () => {
  let reads = 0;
  const store = new (class extends AnswerLostStore {
    override async get(key: ObjectKey): Promise<StoredValue> {
      if (++reads > 1) throw new UnavailableError('get bootstrap cluster: no answer within 5000 ms');
      return super.get(key);
    }
  })(() => new UnavailableError('create bootstrap cluster: no answer within 5000 ms'));
  const files = await controlPlaneFiles();
  await assert.rejects(
    bootstrapCluster({ store, etcd: 'e', log, iterations: ITERATIONS, ...files }),
    (err) =>
      err instanceof UnavailableError &&
      err.message.includes(`stays in ${files.serverTokenFile}`) &&
      /start again/.test(err.message),
  );
  assert.ok(existsSync(files.serverTokenFile));
  assert.ok((await store.list(BOOTSTRAP_KEY.resource)).items.length === 1, 'the record was stored');
});

test("a first start that made its own token and lost the race to another's record removes its token and says whose to take", async () => {
  const winner = new MemoryStore();
  const winnerFiles = await controlPlaneFiles();
  await bootstrapCluster({ store: winner, etcd: 'e', log, iterations: ITERATIONS, ...winnerFiles });
  const record = await winner.get(BOOTSTRAP_KEY);
  // the winner's record lands between this start's read and its create
  const store = new (class extends MemoryStore {
    override async create(key: ObjectKey, value: Uint8Array, options?: WriteOptions): Promise<StoredValue> {
      await super.create(BOOTSTRAP_KEY, record.value);
      return super.create(key, value, options);
    }
  })();
  const files = await controlPlaneFiles();
  await assert.rejects(
    bootstrapCluster({ store, etcd: 'e', log, iterations: ITERATIONS, ...files }),
    (err) =>
      err instanceof FailedPreconditionError &&
      /another control plane made the cluster in etcd e at the same time/.test(err.message) &&
      err.message.includes(`to ${files.serverTokenFile}`),
  );
  assert.equal(existsSync(files.serverTokenFile), false);
});

test('a server token file is read only when it is a private regular file of this user, in a directory no one else writes', async () => {
  const root = await mkdtemp(join(tmpdir(), 'skiff-server-token-'));
  roots.push(root);
  const token = 'x'.repeat(43);
  const file = join(root, 'server-token');
  await writeFile(file, `${token}\n`, { mode: 0o600 });
  assert.equal(await readServerToken(file), token);
  assert.equal(await readServerToken(join(root, 'missing')), undefined);
  const refused = async (path: string, pattern: RegExp) =>
    assert.rejects(readServerToken(path), (err) => err instanceof SkiffError && pattern.test(err.message));

  await chmod(file, 0o640);
  await refused(file, /readable by others \(mode 640\); chmod 600/);
  await chmod(file, 0o600);
  // a link is not followed, even to a good file: whoever may change it would choose the token
  await symlink(file, join(root, 'link'));
  await refused(join(root, 'link'), /symbolic link, which is not followed/);
  // nor does a FIFO put in its place hang the start
  execFileSync('mkfifo', ['-m', '600', join(root, 'fifo')]);
  await refused(join(root, 'fifo'), /not a regular file/);
  // 16 characters once passed; a token is all that guards the CA's key in a copy of etcd
  await writeFile(join(root, 'short'), 'sixteen-chars-ok\n', { mode: 0o600 });
  await refused(join(root, 'short'), /at least 32 characters .*openssl rand -base64 32/);
  // a directory others may write to: someone could put a token of their own in its place
  const open = join(root, 'open');
  await mkdir(open);
  await chmod(open, 0o777);
  await writeFile(join(open, 'server-token'), `${token}\n`, { mode: 0o600 });
  await refused(join(open, 'server-token'), /its directory .*open is writable by others \(mode 777\)/);
});

test('a server token file of another user is refused', async (t) => {
  if (process.getuid?.() !== 0) return t.skip('needs root: only root can give a file to another user');
  const root = await mkdtemp(join(tmpdir(), 'skiff-server-token-'));
  roots.push(root);
  const file = join(root, 'server-token');
  await writeFile(file, `${'x'.repeat(43)}\n`, { mode: 0o600 });
  await chown(file, 1, 1);
  await assert.rejects(
    readServerToken(file),
    (err) =>
      err instanceof FailedPreconditionError &&
      /owned by uid 1, not by this control plane's user \(uid 0\)/.test(err.message),
  );
});

const TOKEN = 'operator-chosen-server-token-0123456789';

/** A control plane's files with the cluster's server token in place. */
async function withToken(): Promise<Awaited<ReturnType<typeof controlPlaneFiles>>> {
  const files = await controlPlaneFiles();
  await writeFile(files.serverTokenFile, `${TOKEN}\n`, { mode: 0o600 });
  return files;
}

const keyNames = (config: EncryptionConfig): string[] => config.keys.map((key) => key.name);

/** What the record in `store` holds of the encryption config. */
async function recordKeys(store: MemoryStore): Promise<string[]> {
  const data = await openBootstrap((await store.get(BOOTSTRAP_KEY)).value, TOKEN, 'here', 'the token');
  return keyNames(parseEncryptionConfig(data.encryptionConfig, 'record'));
}

/** A control plane following the record: its local config, and a stop that waits for the follow. */
function follow(started: ClusterBootstrap, file: string) {
  const local = new LocalEncryptionConfig(file, started.encryption, () => undefined);
  const stop = new AbortController();
  const following = started.record.follow(local, log, stop.signal);
  return {
    local,
    async stop() {
      stop.abort();
      await following;
    },
  };
}

async function eventually(what: string, check: () => Promise<boolean> | boolean): Promise<void> {
  const until = Date.now() + 5000;
  while (!(await check())) {
    assert.ok(Date.now() < until, what);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

test('keys in the file that the record lacks (a rotation whose store failed) stay at the next start, and go to the record', async () => {
  const store = new MemoryStore();
  const files = await withToken();
  const first = await bootstrapCluster({ store, etcd: 'e', log, iterations: ITERATIONS, ...files });
  // before this version a rotation wrote the file and used the key first; then its store failed
  const fresh = newEncryptionKey();
  await writeEncryptionConfig(files.encryptionConfigFile, {
    resources: first.encryption.resources,
    keys: [fresh, ...first.encryption.keys],
  });
  const restarted = await bootstrapCluster({ store, etcd: 'e', log, iterations: ITERATIONS, ...files });
  const expected = [...keyNames(first.encryption), fresh.name];
  assert.deepEqual(keyNames(restarted.encryption), expected);
  assert.deepEqual(keyNames(await readEncryptionConfig(files.encryptionConfigFile)), expected);
  assert.deepEqual(
    await recordKeys(store),
    expected,
    'the record holds it too: other control planes read its values',
  );
});

test('rotations on two control planes at once: the record keeps both new keys, and every control plane gets both', async () => {
  const store = new MemoryStore();
  const cp1 = await withToken();
  const first = await bootstrapCluster({ store, etcd: 'e', log, iterations: ITERATIONS, ...cp1 });
  const cp2 = await withToken();
  const second = await bootstrapCluster({ store, etcd: 'e', log, iterations: ITERATIONS, ...cp2 });
  const following = [follow(first, cp1.encryptionConfigFile), follow(second, cp2.encryptionConfigFile)];
  try {
    const [a, b] = [newEncryptionKey(), newEncryptionKey()];
    const old = first.encryption.keys;
    const [onCp1, onCp2] = await Promise.all([
      first.record.saveEncryption({ resources: first.encryption.resources, keys: [a, ...old] }),
      second.record.saveEncryption({ resources: second.encryption.resources, keys: [b, ...old] }),
    ]);
    // each rotation's own key first where it was made; the other's after it
    assert.equal(onCp1.keys[0]!.name, a.name);
    assert.equal(onCp2.keys[0]!.name, b.name);
    const all = [a.name, b.name, ...keyNames(first.encryption)].sort();
    assert.deepEqual((await recordKeys(store)).sort(), all);
    for (const { local } of following)
      await eventually(
        'a follower holds both keys',
        () => [...keyNames(local.config)].sort().join() === all.join(),
      );
    const cp3 = await withToken();
    const joined = await bootstrapCluster({ store, etcd: 'e', log, iterations: ITERATIONS, ...cp3 });
    assert.deepEqual([...keyNames(joined.encryption)].sort(), all);
  } finally {
    for (const each of following) await each.stop();
  }
});

test('a record that lacks keys a running control plane holds does not take them away', async () => {
  const store = new MemoryStore();
  const files = await withToken();
  const first = await bootstrapCluster({ store, etcd: 'e', log, iterations: ITERATIONS, ...files });
  const following = follow(first, files.encryptionConfigFile);
  try {
    // a record written with the token by something that replaces key lists (an older version)
    const other = newEncryptionKey();
    const current = await store.get(BOOTSTRAP_KEY);
    const data = await openBootstrap(current.value, TOKEN, 'here', 'the token');
    const config = { resources: first.encryption.resources, keys: [other] };
    await store.update(
      BOOTSTRAP_KEY,
      await sealBootstrap(
        { ...data, encryptionConfig: renderEncryptionConfig(config), generation: data.generation + 1 },
        TOKEN,
        ITERATIONS,
      ),
      current.modRevision,
    );
    const expected = [other.name, ...keyNames(first.encryption)];
    await eventually(
      'the follower took the new key',
      () => following.local.config.keys[0]!.name === other.name,
    );
    assert.deepEqual(keyNames(following.local.config), expected);
    assert.deepEqual(keyNames(await readEncryptionConfig(files.encryptionConfigFile)), expected);
  } finally {
    await following.stop();
  }
});

test('a running control plane refuses a record of another CA made over its cluster’s, and keeps its keys', async () => {
  const store = new MemoryStore();
  const files = await withToken();
  const first = await bootstrapCluster({ store, etcd: 'e', log, iterations: ITERATIONS, ...files });
  const errors: string[] = [];
  const logged = pino({ level: 'error' }, { write: (line: string) => void errors.push(line) });
  const local = new LocalEncryptionConfig(files.encryptionConfigFile, first.encryption, () => undefined);
  const stop = new AbortController();
  const following = first.record.follow(local, logged, stop.signal);
  try {
    // the record removed, and a new cluster made in its place with the same token
    await store.delete(BOOTSTRAP_KEY);
    const otherCa = CertificateAuthority.create({ commonName: 'skiff-cluster-ca' });
    const config = { resources: new Set(['secrets']), keys: [newEncryptionKey()] };
    await store.create(
      BOOTSTRAP_KEY,
      await sealBootstrap(
        {
          ca: { certificatePem: otherCa.certificatePem, privateKeyPem: otherCa.privateKeyPem },
          encryptionConfig: renderEncryptionConfig(config),
          generation: 1,
        },
        TOKEN,
        ITERATIONS,
      ),
    );
    await eventually('the refusal was logged', () =>
      errors.some((line) => line.includes('of another cluster CA')),
    );
    assert.deepEqual(keyNames(local.config), keyNames(first.encryption));
    assert.deepEqual(
      keyNames(await readEncryptionConfig(files.encryptionConfigFile)),
      keyNames(first.encryption),
    );
  } finally {
    stop.abort();
    await following;
  }
});

/** The generation of the record in `store`, as its clear part says. */
async function recordGeneration(store: MemoryStore): Promise<number> {
  return JSON.parse(Buffer.from((await store.get(BOOTSTRAP_KEY)).value).toString('utf8')).generation;
}

test('an older record put back (a copy replayed without the token) rolls no rotation back: it is stored again, newer', async () => {
  const store = new MemoryStore();
  const files = await withToken();
  const first = await bootstrapCluster({ store, etcd: 'e', log, iterations: ITERATIONS, ...files });
  assert.equal(await recordGeneration(store), 1);
  const copy = await store.get(BOOTSTRAP_KEY); // someone who may write to etcd keeps a copy
  const local = new LocalEncryptionConfig(files.encryptionConfigFile, first.encryption, () => undefined);
  const rotated = await rotateEncryptionKey(
    local,
    new EncryptingStore(new MemoryStore(), first.encryption),
    (config) => first.record.saveEncryption(config),
  );
  assert.equal(await recordGeneration(store), 2);
  const errors: string[] = [];
  const logged = pino({ level: 'error' }, { write: (line: string) => void errors.push(line) });
  const stop = new AbortController();
  const following = first.record.follow(local, logged, stop.signal);
  try {
    const now = await store.get(BOOTSTRAP_KEY);
    await store.update(BOOTSTRAP_KEY, copy.value, now.modRevision); // opens with the token as well
    await eventually('the follower stored its keys again', async () => (await recordGeneration(store)) === 3);
    assert.ok(errors.some((line) => line.includes('older than the one this control plane took')));
    // the rotated key still encrypts, here and in the record
    assert.equal(local.config.keys[0]!.name, rotated.keyName);
    assert.equal((await recordKeys(store))[0], rotated.keyName);
  } finally {
    stop.abort();
    await following;
  }
  // a restart remembers the generation it took (its file): the copy put back again is not taken
  const now = await store.get(BOOTSTRAP_KEY);
  await store.update(BOOTSTRAP_KEY, copy.value, now.modRevision);
  const restarted = await bootstrapCluster({ store, etcd: 'e', log, iterations: ITERATIONS, ...files });
  assert.equal(restarted.encryption.keys[0]!.name, rotated.keyName);
  assert.equal((await recordKeys(store))[0], rotated.keyName);
  assert.equal(await recordGeneration(store), 4);
  assert.deepEqual(JSON.parse(await readFile(files.generationFile, 'utf8')), {
    caHash: first.record.caHash,
    generation: 4,
  });
});

test('a generation file that is not one is refused, naming it and what to do', async () => {
  const files = await withToken();
  await writeFile(files.generationFile, 'seven\n', { mode: 0o600 });
  await assert.rejects(
    bootstrapCluster({ store: new MemoryStore(), etcd: 'e', log, iterations: ITERATIONS, ...files }),
    (err) =>
      err instanceof InvalidArgumentError &&
      err.message.startsWith(`read ${files.generationFile}: it is not`) &&
      /remove it/.test(err.message),
  );
});

test('the record lost: a control plane on empty directories is refused (the cluster is named); one with the cluster’s files stores it again', async () => {
  const store = new MemoryStore();
  const cp1 = await withToken();
  const first = await bootstrapCluster({
    store,
    etcd: 'e (prefix /skiff)',
    log,
    iterations: ITERATIONS,
    ...cp1,
  });
  const local = new LocalEncryptionConfig(cp1.encryptionConfigFile, first.encryption, () => undefined);
  const stop = new AbortController();
  const following = first.record.follow(local, log, stop.signal);
  try {
    // a running cluster: what its first start made besides the record
    await store.create({ resource: 'namespaces', name: 'default' }, Buffer.from('{}'));
    await store.delete(BOOTSTRAP_KEY); // a clean-up, or someone with etcd access
    const cp2 = await withToken();
    await assert.rejects(
      bootstrapCluster({ store, etcd: 'e (prefix /skiff)', log, iterations: ITERATIONS, ...cp2 }),
      (err) =>
        err instanceof FailedPreconditionError &&
        err.message.includes(
          'etcd e (prefix /skiff) holds a cluster (its namespaces) but not its bootstrap data',
        ) &&
        err.message.includes(
          `no cluster CA in ${cp2.caDir} and no encryption config ${cp2.encryptionConfigFile}`,
        ) &&
        /Restore the record: restart a control plane of this cluster/.test(err.message),
    );
    assert.equal(existsSync(cp2.caDir) || existsSync(cp2.encryptionConfigFile), false, 'nothing written');
    await assert.rejects(store.get(BOOTSTRAP_KEY), /not found/i);
    // the first control plane, restarted with its files and the token, stores the record again
    const restored = await bootstrapCluster({
      store,
      etcd: 'e (prefix /skiff)',
      log,
      iterations: ITERATIONS,
      ...cp1,
    });
    assert.equal(restored.created, true);
    assert.equal(await recordGeneration(store), 2, 'above the generation the running control planes took');
    const joined = await bootstrapCluster({
      store,
      etcd: 'e (prefix /skiff)',
      log,
      iterations: ITERATIONS,
      ...cp2,
    });
    assert.equal(joined.ca.certificatePem, first.ca.certificatePem);
    assert.deepEqual(keyNames(joined.encryption), keyNames(first.encryption));
    assert.deepEqual(keyNames(local.config), keyNames(first.encryption), 'the running one lost nothing');
  } finally {
    stop.abort();
    await following;
  }
});
