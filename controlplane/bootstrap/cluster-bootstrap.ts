/**
 * The cluster's bootstrap at a control plane's start: the CA and the Secrets' encryption config
 * every control plane of the cluster shares, kept in etcd only sealed with the server token
 * (bootstrap-data.ts), and on each control plane's disk as before.
 *
 *   etcd holds no bootstrap data (the cluster's first control plane)
 *     refused when etcd holds a cluster's objects and this control plane lacks the CA or the
 *     encryption config (the record was lost: new ones would orphan every Secret and node);
 *     otherwise the CA of --cluster-ca-dir and the encryption config of its file, or new ones;
 *     the server token of --server-token-file, or a new one written there 0600 first (a crash
 *     after the record is stored must not leave data no one can open); then the record is created
 *     only if still absent (one etcd transaction): of two first starts at once one wins and the
 *     other reads the winner's record, as below, and removes a token file it made. A create that
 *     fails is judged by what etcd holds then, as its answer may be lost after it was applied:
 *     this start's own record (bytes alike) is kept, token file and all; none removes the token
 *     file made here; when etcd cannot be read the file stays, as it may be the record's only token
 *   etcd holds it (every later start, every other control plane)
 *     no server token: refused; a token that does not open it: refused; a CA on disk that is not
 *     the record's: refused. Each refusal names what to do, and nothing is written. Otherwise the
 *     CA is written where missing, and the encryption config merged with the file's: the record's
 *     keys first (its first encrypts), then any only the file holds, which go to the record too.
 *     A record older (by its generation) than one this control plane took is not taken: the
 *     file's keys come first and are stored again, newer
 *
 * Keys are never dropped: every change of a key list, here or from the record, merges by key name
 * (mergeEncryptionConfigs), so neither a record that lacks a key nor two rotations at once on two
 * control planes lose one. After the start, SharedBootstrapRecord `follow` takes rotations made on
 * other control planes, and `saveEncryption` stores one made here, before it is used here.
 */
import { constants, existsSync } from 'node:fs';
import { open, readFile, rm, stat, type FileHandle } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { mkdir } from 'node:fs/promises';
import {
  AlreadyExistsError,
  ConflictError,
  FailedPreconditionError,
  InvalidArgumentError,
  NotFoundError,
  UnavailableError,
  errorMessage,
} from '../../proto/errors.js';
import { writeFileAtomic } from '../../proto/support/atomic-file.js';
import type { Logger } from '../../proto/support/logger.js';
import {
  CA_CERTIFICATE_FILE,
  CA_PRIVATE_KEY_FILE,
  CertificateAuthority,
  readCertificateAuthority,
  writeCertificateAuthority,
} from '../../proto/support/pki.js';
import { trustBundleHash } from '../../proto/support/trust-bundle.js';
import { generateToken } from '../api/auth.js';
import {
  mergeEncryptionConfigs,
  newEncryptionKey,
  parseEncryptionConfig,
  readEncryptionConfig,
  renderEncryptionConfig,
  sameEncryptionConfig,
  type EncryptionConfig,
  type LocalEncryptionConfig,
} from '../store/encryption-config.js';
import type { ObjectKey, Store, StoredValue } from '../store/store.js';
import { openBootstrap, readBootstrapRecord, sealBootstrap, type BootstrapData } from './bootstrap-data.js';

/** `<prefix>/bootstrap/cluster` in etcd. */
export const BOOTSTRAP_KEY: ObjectKey = { resource: 'bootstrap', name: 'cluster' };
/**
 * A server token shorter than this is refused: it is all that guards the CA key in etcd, and a
 * copy of etcd lets anyone guess at it offline. What the first control plane makes is 43.
 */
const MIN_SERVER_TOKEN_LENGTH = 32;

export interface ClusterBootstrapOptions {
  /** etcd without the encryption layer (the record is sealed already). */
  store: Store;
  /** The endpoints, for messages. */
  etcd: string;
  serverTokenFile: string;
  caDir: string;
  encryptionConfigFile: string;
  /** Where this control plane keeps the newest generation of the record it took (TakenGeneration). */
  generationFile: string;
  log: Logger;
  /** PBKDF2 iterations for a new record (tests make it cheaper); default BOOTSTRAP_ITERATIONS. */
  iterations?: number;
}

export interface ClusterBootstrap {
  ca: CertificateAuthority;
  encryption: EncryptionConfig;
  /** The server token, for later saves and reads of the record. */
  serverToken: string;
  /** Whether this start stored the record (this is the cluster's first control plane). */
  created: boolean;
  /** The record in etcd, for rotations here (saveEncryption) and elsewhere (follow). */
  record: SharedBootstrapRecord;
}

function ownUid(): number {
  return process.getuid?.() ?? 0;
}

/**
 * The server token in `file`, or undefined when there is none. Refused unless the file is this
 * user's, readable by no one else, in a directory no one else may write to (where someone could
 * put a token of their own in its place), and itself a regular file: a symbolic link is not
 * followed (it could be pointed elsewhere), and what is checked is the file that is read (one open,
 * then fstat).
 */
export async function readServerToken(file: string): Promise<string | undefined> {
  const action = `read server token ${file}`;
  let handle: FileHandle;
  try {
    // O_NONBLOCK: a FIFO put in its place does not hang the start
    handle = await open(file, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return undefined;
    if (code === 'ELOOP')
      throw new FailedPreconditionError(
        `${action}: it is a symbolic link, which is not followed (whoever may change the link chooses the token); give --server-token-file the file itself`,
      );
    throw new FailedPreconditionError(`${action}: ${errorMessage(err)}`, { cause: err });
  }
  try {
    const info = await handle.stat();
    const uid = ownUid();
    if (!info.isFile())
      throw new FailedPreconditionError(
        `${action}: it is not a regular file; give --server-token-file a file`,
      );
    if (info.uid !== uid)
      throw new FailedPreconditionError(
        `${action}: it is owned by uid ${info.uid}, not by this control plane's user (uid ${uid}), who alone may hold the token that opens the cluster CA's key in etcd; chown ${uid} ${file}`,
      );
    if ((info.mode & 0o077) !== 0)
      throw new FailedPreconditionError(
        `${action}: it opens the cluster CA's key in etcd and is readable by others (mode ${(info.mode & 0o777).toString(8)}); chmod 600 ${file}`,
      );
    const dir = dirname(file);
    const dirInfo = await stat(dir);
    if ((dirInfo.uid !== uid && dirInfo.uid !== 0) || (dirInfo.mode & 0o022) !== 0)
      throw new FailedPreconditionError(
        `${action}: its directory ${dir} is ${dirInfo.uid !== uid && dirInfo.uid !== 0 ? `owned by uid ${dirInfo.uid}` : `writable by others (mode ${(dirInfo.mode & 0o777).toString(8)})`}, so someone else could put a token of their own in its place; make it uid ${uid}'s (or root's) and writable by no one else (chmod go-w ${dir}), or keep the token in such a directory`,
      );
    const token = (await handle.readFile('utf8')).trim();
    if (token.length < MIN_SERVER_TOKEN_LENGTH || /\s/.test(token))
      throw new InvalidArgumentError(
        `${action}: it must be one line of at least ${MIN_SERVER_TOKEN_LENGTH} characters without spaces, random ones (it is all that guards the cluster CA's key in etcd); make one with \`openssl rand -base64 32\`, or leave the file missing on the cluster's first control plane, which then makes one`,
        'server-token-file',
      );
    return token;
  } finally {
    await handle.close();
  }
}

async function writePrivate(file: string, content: string): Promise<void> {
  await mkdir(dirname(file), { recursive: true, mode: 0o700 });
  await writeFileAtomic(file, content, { mode: 0o600 });
}

/** The CA in `dir`; undefined when neither of its files is there. */
async function localCa(dir: string): Promise<CertificateAuthority | undefined> {
  if (!existsSync(join(dir, CA_CERTIFICATE_FILE)) && !existsSync(join(dir, CA_PRIVATE_KEY_FILE)))
    return undefined;
  return readCertificateAuthority(dir);
}

async function localEncryption(file: string): Promise<EncryptionConfig | undefined> {
  try {
    return await readEncryptionConfig(file);
  } catch (err) {
    if (err instanceof NotFoundError) return undefined;
    throw err;
  }
}

/** What every cluster's etcd holds once a control plane ran (namespaces, the admin token's record). */
const CLUSTER_RESOURCES = ['namespaces', 'tokens', 'nodes', 'secrets'];

/** The first resource of CLUSTER_RESOURCES of which etcd holds an object; undefined when none. */
async function clusterObjectIn(store: Store): Promise<string | undefined> {
  for (const resource of CLUSTER_RESOURCES)
    if ((await store.list(resource, { limit: 1 })).items.length > 0) return resource;
  return undefined;
}

/**
 * The newest generation of the record this control plane took, kept in a file (JSON: the CA's
 * hash and the generation) so that a restart remembers it too: a record older than that was put
 * back by someone (a copy replayed by whoever may write to etcd, an etcd restored from a backup)
 * and is never taken. Counted per cluster CA: a generation of another cluster says nothing.
 */
export class TakenGeneration {
  private writes: Promise<unknown> = Promise.resolve();

  private constructor(
    readonly file: string,
    private taken: { caHash: string; generation: number } | undefined,
  ) {}

  static async load(file: string): Promise<TakenGeneration> {
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return new TakenGeneration(file, undefined);
      throw new FailedPreconditionError(`read ${file}: ${errorMessage(err)}`, { cause: err });
    }
    let taken: Partial<{ caHash: string; generation: number }> | undefined;
    try {
      taken = JSON.parse(text) as typeof taken;
    } catch {
      taken = undefined;
    }
    if (typeof taken?.caHash !== 'string' || !Number.isSafeInteger(taken.generation) || taken.generation! < 0)
      throw new InvalidArgumentError(
        `read ${file}: it is not {"caHash": …, "generation": …}, the generation of the bootstrap data this control plane took; remove it (it is written again at the next start)`,
      );
    return new TakenGeneration(file, { caHash: taken.caHash, generation: taken.generation! });
  }

  /** The newest generation taken of the record of the CA `caHash`; 0 when none. */
  of(caHash: string): number {
    return this.taken?.caHash === caHash ? this.taken.generation : 0;
  }

  /** Remembers that the record of `caHash` was taken at `generation` (when it is newer). */
  note(caHash: string, generation: number): Promise<void> {
    if (this.taken?.caHash === caHash && this.taken.generation >= generation)
      return this.writes.then(() => undefined);
    this.taken = { caHash, generation };
    const taken = this.taken;
    const write = this.writes.then(() => writePrivate(this.file, `${JSON.stringify(taken)}\n`));
    this.writes = write.catch(() => undefined);
    return write;
  }
}

/**
 * Takes a record's data to this control plane's disk: what a later start or a reader of the files
 * finds. The encryption config is merged (the record's keys first, then any only the file holds:
 * mergeEncryptionConfigs), never replaced; keys held here that the record lacks go to the record
 * first, as a rotation's would. A record older than one this control plane took is not taken:
 * the file's keys come first, and they are stored again as a newer generation.
 */
async function adopt(
  data: BootstrapData,
  options: ClusterBootstrapOptions,
  record: SharedBootstrapRecord,
  created: boolean,
): Promise<ClusterBootstrap> {
  const { caHash, taken } = record;
  const ca = CertificateAuthority.fromPem(data.ca);
  const fromRecord = `the bootstrap data in etcd ${options.etcd}`;
  const recordConfig = parseEncryptionConfig(data.encryptionConfig, fromRecord);
  const onDisk = await localCa(options.caDir);
  if (onDisk !== undefined && trustBundleHash(onDisk.certificatePem) !== caHash)
    throw new FailedPreconditionError(
      `start control plane: --cluster-ca-dir ${options.caDir} holds a CA (sha256:${trustBundleHash(onDisk.certificatePem).slice(0, 16)}…) that is not the cluster's in etcd ${options.etcd} (sha256:${caHash.slice(0, 16)}…); this control plane belongs to another cluster, or the directory is stale: point --cluster-ca-dir at an empty directory to take the cluster's CA`,
    );
  const localConfig = await localEncryption(options.encryptionConfigFile);
  const newest = taken.of(caHash);
  const older = data.generation < newest;
  if (older && localConfig === undefined)
    throw new FailedPreconditionError(
      `start control plane: the bootstrap data in etcd ${options.etcd} is generation ${data.generation}, older than the ${newest} this control plane took (${taken.file}), and ${options.encryptionConfigFile}, which held that one's keys, is gone: put it back, or remove ${taken.file} to take the older record`,
    );
  const places = { first: fromRecord, then: options.encryptionConfigFile };
  const merged =
    localConfig === undefined
      ? recordConfig
      : older
        ? mergeEncryptionConfigs(localConfig, recordConfig, { first: places.then, then: places.first })
        : mergeEncryptionConfigs(recordConfig, localConfig, places);
  if (older)
    options.log.warn(
      { generation: data.generation, taken: newest, etcd: options.etcd },
      'bootstrap data in etcd is older than the one this control plane took (an older copy was put back); storing this control plane’s again',
    );
  // keys only this control plane holds (a rotation here whose store failed, before this version
  // stored first; a key added to the file by hand; an older record's put back): in the record
  // before anything else
  const encryption =
    !older && sameEncryptionConfig(merged, recordConfig) ? merged : await record.saveEncryption(merged);
  // the files, once every check passed: a refusal writes nothing
  if (onDisk === undefined) {
    await writeCertificateAuthority(options.caDir, ca);
    options.log.info({ dir: options.caDir, caHash }, 'cluster CA taken from the bootstrap data in etcd');
  }
  if (localConfig === undefined || !sameEncryptionConfig(localConfig, encryption)) {
    await writePrivate(options.encryptionConfigFile, renderEncryptionConfig(encryption));
    if (!created)
      options.log.info(
        { file: options.encryptionConfigFile, keys: encryption.keys.map((key) => key.name) },
        localConfig === undefined
          ? 'encryption config taken from the bootstrap data in etcd'
          : 'encryption config merged with the one in the bootstrap data in etcd',
      );
  }
  await taken.note(caHash, data.generation);
  return { ca, encryption, serverToken: record.serverToken, created, record };
}

export async function bootstrapCluster(options: ClusterBootstrapOptions): Promise<ClusterBootstrap> {
  const { store, log, serverTokenFile } = options;
  const where = `in etcd ${options.etcd}`;
  const given = await readServerToken(serverTokenFile);
  const taken = await TakenGeneration.load(options.generationFile);
  const sharedRecord = (caHash: string, serverToken: string): SharedBootstrapRecord =>
    new SharedBootstrapRecord({
      store,
      etcd: options.etcd,
      serverToken,
      caHash,
      taken,
      ...(options.iterations !== undefined ? { iterations: options.iterations } : {}),
    });
  const read = async (): Promise<Uint8Array | undefined> => {
    try {
      return (await store.get(BOOTSTRAP_KEY)).value;
    } catch (err) {
      if (err instanceof NotFoundError) return undefined;
      throw err;
    }
  };
  const join = async (stored: Uint8Array, token: string | undefined): Promise<ClusterBootstrap> => {
    const { caHash } = readBootstrapRecord(stored, where);
    if (token === undefined)
      throw new FailedPreconditionError(
        `start control plane: etcd ${options.etcd} holds the bootstrap data of a cluster (cluster CA sha256:${caHash.slice(0, 16)}…), which only its server token opens, and ${serverTokenFile} does not exist; copy the first control plane's <state-dir>/server-token there (mode 0600) or give its path with --server-token-file`,
      );
    const data = await openBootstrap(stored, token, where, `the server token in ${serverTokenFile}`);
    return adopt(data, options, sharedRecord(caHash, token), false);
  };

  const stored = await read();
  if (stored !== undefined) return join(stored, given);

  // the cluster's first control plane, or one of several starting at once; or a cluster whose
  // record was lost, stored again from a control plane's own files
  const caOnDisk = await localCa(options.caDir);
  const encryptionOnDisk = await localEncryption(options.encryptionConfigFile);
  if (caOnDisk === undefined || encryptionOnDisk === undefined) {
    const found = await clusterObjectIn(store);
    if (found !== undefined) {
      // the first of several starting at once may have stored its record since the read above
      const since = await read();
      if (since !== undefined) return join(since, given);
      const missing = [
        ...(caOnDisk === undefined ? [`no cluster CA in ${options.caDir}`] : []),
        ...(encryptionOnDisk === undefined ? [`no encryption config ${options.encryptionConfigFile}`] : []),
      ].join(' and ');
      throw new FailedPreconditionError(
        `start control plane: etcd ${options.etcd} holds a cluster (its ${found}) but not its bootstrap data (bootstrap/cluster under that prefix), and this control plane has ${missing}; a new CA and new keys made here would leave every Secret unreadable and every node and join token of the cluster distrusted, so none are made. Restore the record: restart a control plane of this cluster that still holds its CA directory and encryption config, with the server token; it stores them again. Or give this one copies of them (--cluster-ca-dir, --encryption-provider-config) and the server token. For a new cluster, give another --etcd-prefix`,
      );
    }
  }
  const ca = caOnDisk ?? CertificateAuthority.create({ commonName: 'skiff-cluster-ca' });
  const encryption = encryptionOnDisk ?? {
    resources: new Set(['secrets']),
    keys: [newEncryptionKey()],
  };
  const caHash = trustBundleHash(ca.certificatePem);
  const token = given ?? generateToken();
  const data: BootstrapData = {
    ca: { certificatePem: ca.certificatePem, privateKeyPem: ca.privateKeyPem },
    encryptionConfig: renderEncryptionConfig(encryption),
    // above any this control plane took of its CA's record (one stored again after a loss)
    generation: taken.of(caHash) + 1,
  };
  const sealed = await sealBootstrap(data, token, options.iterations);
  // the token first: a record stored with a token no file holds could never be opened again
  if (given === undefined) await writePrivate(serverTokenFile, `${token}\n`);
  try {
    await store.create(BOOTSTRAP_KEY, sealed);
  } catch (err) {
    // What etcd holds decides, never the error alone: a create whose answer was lost (a deadline,
    // a reset connection) may have been applied, and with several endpoints the client's retry
    // then finds this very record and says it already exists.
    let stored: Uint8Array | undefined;
    try {
      stored = await read();
    } catch (readErr) {
      throw new UnavailableError(
        `start control plane: store the cluster's bootstrap data ${where}: ${errorMessage(err)}; whether it was stored is unknown (reading it again failed: ${errorMessage(readErr)})${given === undefined ? `, so the server token it may be sealed with stays in ${serverTokenFile}` : ''}; start again once etcd answers`,
        options.etcd,
        { cause: err },
      );
    }
    if (stored === undefined) {
      if (given === undefined) await rm(serverTokenFile, { force: true });
      if (err instanceof AlreadyExistsError)
        throw new ConflictError(
          `start control plane: the bootstrap data ${where} was stored and removed at once; start again`,
        );
      throw err;
    }
    if (!Buffer.from(stored).equals(sealed)) {
      // another control plane stored it first: its record is the cluster's
      try {
        return await join(stored, given);
      } catch (joinErr) {
        if (given === undefined) {
          await rm(serverTokenFile, { force: true });
          if (joinErr instanceof FailedPreconditionError)
            throw new FailedPreconditionError(
              `start control plane: another control plane made the cluster ${where} at the same time, with a server token of its own; copy its <state-dir>/server-token to ${serverTokenFile} (mode 0600) and start again`,
              { cause: joinErr },
            );
        }
        throw joinErr;
      }
    }
    // this start's own record: the create was applied and only its answer was lost
  }
  log.info(
    { caHash, serverTokenFile, etcd: options.etcd },
    'cluster bootstrap data stored in etcd, sealed with the server token',
  );
  return adopt(data, options, sharedRecord(caHash, token), true);
}

export interface SharedBootstrapRecordOptions {
  /** etcd without the encryption layer. */
  store: Store;
  /** The endpoints, for messages. */
  etcd: string;
  serverToken: string;
  /** The cluster CA's hash: a record of another CA is not this cluster's. */
  caHash: string;
  /** The newest generation taken: an older record is never taken, and each one stored is newer. */
  taken: TakenGeneration;
  /** PBKDF2 iterations for records written; default BOOTSTRAP_ITERATIONS. */
  iterations?: number;
}

/**
 * The cluster's bootstrap record in etcd as one control plane shares it: it stores a rotation made
 * here (saveEncryption) and takes those made elsewhere (follow), merging key lists both ways, so
 * that no control plane's change, however they interleave, drops a key another holds.
 */
export class SharedBootstrapRecord {
  readonly caHash: string;
  readonly serverToken: string;
  readonly taken: TakenGeneration;
  private readonly where: string;

  constructor(private readonly options: SharedBootstrapRecordOptions) {
    this.caHash = options.caHash;
    this.serverToken = options.serverToken;
    this.taken = options.taken;
    this.where = `in etcd ${options.etcd}`;
  }

  /**
   * Stores `encryption` in the record, merged over the record's (its keys first, then any the
   * record holds that it lacks), keeping the record's CA, as a generation above both the record's
   * and any taken here; retried on a concurrent change. The encryption config the record holds now.
   */
  async saveEncryption(encryption: EncryptionConfig): Promise<EncryptionConfig> {
    const { store } = this.options;
    for (let attempt = 0; ; attempt++) {
      const current = await store.get(BOOTSTRAP_KEY);
      const { data, config } = await this.open(current.value);
      const newest = this.taken.of(this.caHash);
      const merged = mergeEncryptionConfigs(encryption, config, {
        first: 'this control plane’s encryption config',
        then: `the bootstrap data ${this.where}`,
      });
      // an older record than one taken here is stored again whatever it holds
      if (data.generation >= newest && sameEncryptionConfig(merged, config)) return config;
      const generation = Math.max(data.generation, newest) + 1;
      const sealed = await sealBootstrap(
        { ...data, encryptionConfig: renderEncryptionConfig(merged), generation },
        this.serverToken,
        this.options.iterations,
      );
      try {
        await store.update(BOOTSTRAP_KEY, sealed, current.modRevision);
      } catch (err) {
        if (!(err instanceof ConflictError) || attempt >= 4) throw err;
        continue;
      }
      await this.taken.note(this.caHash, generation);
      return merged;
    }
  }

  /**
   * Follows the record until `signal` aborts: each change's encryption config (a rotation on
   * another control plane) is taken into `keys`, which merges it (nothing held here is dropped).
   * A record this control plane must not take (another CA's, one its token does not open) is
   * refused, logged as an error once, and the keys stay as they are. A record older than one taken
   * here (a copy put back) is not taken either: this control plane's keys are stored again, as a
   * newer generation.
   */
  async follow(keys: LocalEncryptionConfig, log: Logger, signal: AbortSignal): Promise<void> {
    const { store } = this.options;
    let last = renderEncryptionConfig(keys.config);
    let refused: bigint | undefined;
    const apply = async (stored: StoredValue): Promise<void> => {
      let config: EncryptionConfig;
      let generation: number;
      try {
        ({
          config,
          data: { generation },
        } = await this.open(stored.value));
      } catch (err) {
        if (!(err instanceof FailedPreconditionError) && !(err instanceof InvalidArgumentError)) throw err;
        if (refused !== stored.modRevision)
          log.error(
            { err: errorMessage(err) },
            'bootstrap data in etcd refused; the encryption keys stay as they are',
          );
        refused = stored.modRevision;
        return;
      }
      const newest = this.taken.of(this.caHash);
      if (generation < newest) {
        log.error(
          { generation, taken: newest },
          'bootstrap data in etcd is older than the one this control plane took (an older copy was put back: by someone who may write to etcd, or an etcd restored from a backup); not taken, this control plane’s keys stored again',
        );
        await this.saveEncryption(keys.config);
        return;
      }
      await this.taken.note(this.caHash, generation);
      const text = renderEncryptionConfig(config);
      if (text === last) return;
      const now = await keys.take(config, `the bootstrap data ${this.where}`);
      last = text;
      log.info(
        { keys: now.keys.map((key) => key.name) },
        'encryption keys taken from the bootstrap data in etcd',
      );
    };
    while (!signal.aborted) {
      try {
        const revision = (await store.list(BOOTSTRAP_KEY.resource)).revision;
        // a change made between the start and this list
        const now = await store.get(BOOTSTRAP_KEY).catch(() => undefined);
        if (now !== undefined) await apply(now);
        for await (const event of store.watch(BOOTSTRAP_KEY.resource, { afterRevision: revision, signal })) {
          if (
            (event.type === 'added' || event.type === 'modified') &&
            event.item.key.name === BOOTSTRAP_KEY.name
          )
            await apply(event.item);
        }
      } catch (err) {
        if (signal.aborted) return;
        log.warn({ err: errorMessage(err) }, 'follow the bootstrap data in etcd failed; again in 5 s');
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, 5000);
          signal.addEventListener('abort', () => (clearTimeout(timer), resolve()), { once: true });
        });
      }
    }
  }

  /** A stored record's data and encryption config; refused when it is not this cluster's. */
  private async open(value: Uint8Array): Promise<{ data: BootstrapData; config: EncryptionConfig }> {
    const { caHash } = readBootstrapRecord(value, this.where);
    if (caHash !== this.caHash)
      throw new FailedPreconditionError(
        `read the bootstrap data ${this.where}: it is of another cluster CA (sha256:${caHash.slice(0, 16)}…) than this control plane's (sha256:${this.caHash.slice(0, 16)}…), made anew over this cluster's: remove it (bootstrap/cluster under the etcd prefix) and restart a control plane of this cluster that holds its CA and encryption config, with its server token: it stores them again`,
      );
    const data = await openBootstrap(
      value,
      this.serverToken,
      this.where,
      'this control plane’s server token',
    );
    return { data, config: parseEncryptionConfig(data.encryptionConfig, `bootstrap data ${this.where}`) };
  }
}
