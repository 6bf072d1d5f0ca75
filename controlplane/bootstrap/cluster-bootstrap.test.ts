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
  SkiffError,
  UnavailableError,
} from '../../proto/errors.js';
import { MemoryStore } from '../store/memory-store.js';
import type { ObjectKey, StoredValue, WriteOptions } from '../store/store.js';
import {
  BOOTSTRAP_KEY,
  bootstrapCluster,
  readServerToken,
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
  Pick<ClusterBootstrapOptions, 'serverTokenFile' | 'caDir' | 'encryptionConfigFile'>
> {
  const root = await mkdtemp(join(tmpdir(), 'skiff-bootstrap-'));
  roots.push(root);
  return {
    serverTokenFile: join(root, 'server-token'),
    caDir: join(root, 'pki'),
    encryptionConfigFile: join(root, 'encryption-config.yaml'),
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
