import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { AlreadyExistsError, FailedPreconditionError, UnavailableError } from '../../proto/errors.js';
import { MemoryStore } from '../store/memory-store.js';
import type { ObjectKey, StoredValue, WriteOptions } from '../store/store.js';
import { BOOTSTRAP_KEY, bootstrapCluster, type ClusterBootstrapOptions } from './cluster-bootstrap.js';

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
