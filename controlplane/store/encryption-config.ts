/**
 * The encryption-at-rest configuration, in Kubernetes' EncryptionConfiguration format so operators
 * read and write it as they would for kube-apiserver (`--encryption-provider-config`):
 *
 *   apiVersion: apiserver.config.k8s.io/v1
 *   kind: EncryptionConfiguration
 *   resources:
 *     - resources: [secrets]
 *       providers:
 *         - aesgcm:
 *             keys:
 *               - name: key-20261206210000      # the first key encrypts
 *                 secret: <base64 of 32 random bytes>
 *               - name: key-20260101000000      # older keys still decrypt
 *                 secret: ...
 *         - identity: {}                        # values written before encryption was on
 *
 * skiff supports the aesgcm provider, first in the list (values without the aesgcm prefix are read
 * as plaintext whether or not identity is listed). The file holds keys: it is written 0600,
 * atomically, and refused when group or others may read it.
 */
import { randomBytes } from 'node:crypto';
import { stat, readFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { parse as parseYaml, stringify as stringifyYaml } from 'yaml';
import {
  FailedPreconditionError,
  InvalidArgumentError,
  NotFoundError,
  errorMessage,
} from '../../proto/errors.js';
import { writeFileAtomic } from '../../proto/support/atomic-file.js';
import { mkdir } from 'node:fs/promises';
import { checkEncryptionKeys, type EncryptionKey } from './encrypting-store.js';

export interface EncryptionConfig {
  /** Resources (plurals) whose values are encrypted. */
  resources: ReadonlySet<string>;
  /** The first encrypts; all decrypt. */
  keys: EncryptionKey[];
}

function fail(file: string, field: string, problem: string): never {
  throw new InvalidArgumentError(`read encryption config ${file}: ${field}: ${problem}`, field);
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Parses the text of an EncryptionConfiguration; errors name the file and the field. */
export function parseEncryptionConfig(text: string, file: string): EncryptionConfig {
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (err) {
    fail(file, '', `not YAML: ${errorMessage(err)}`);
  }
  if (!isObject(doc) || doc.kind !== 'EncryptionConfiguration') {
    fail(file, 'kind', 'must be EncryptionConfiguration (apiVersion apiserver.config.k8s.io/v1)');
  }
  const entries = doc.resources;
  if (!Array.isArray(entries) || entries.length !== 1 || !isObject(entries[0])) {
    fail(file, 'resources', 'must hold exactly one entry (the resources to encrypt and their providers)');
  }
  const entry = entries[0];
  const names = entry.resources;
  if (
    !Array.isArray(names) ||
    names.length === 0 ||
    names.some((name) => typeof name !== 'string' || name === '')
  ) {
    fail(file, 'resources[0].resources', 'must list the resources to encrypt, e.g. [secrets]');
  }
  const providers = entry.providers;
  if (!Array.isArray(providers) || providers.length === 0) fail(file, 'resources[0].providers', 'required');
  const first = providers[0];
  if (!isObject(first) || !isObject(first.aesgcm)) {
    fail(
      file,
      'resources[0].providers[0]',
      'skiff encrypts with aesgcm, which must come first (identity first would store values in plaintext)',
    );
  }
  for (const [i, provider] of providers.entries()) {
    if (
      !isObject(provider) ||
      Object.keys(provider).some((name) => name !== 'aesgcm' && name !== 'identity')
    ) {
      fail(file, `resources[0].providers[${i}]`, 'skiff supports the aesgcm and identity providers');
    }
  }
  const keys = (first.aesgcm as Record<string, unknown>).keys;
  if (!Array.isArray(keys) || keys.length === 0)
    fail(file, 'resources[0].providers[0].aesgcm.keys', 'required');
  const parsed = keys.map((key, i): EncryptionKey => {
    const at = `resources[0].providers[0].aesgcm.keys[${i}]`;
    if (!isObject(key) || typeof key.name !== 'string' || typeof key.secret !== 'string') {
      fail(file, at, 'needs a name and a secret (base64)');
    }
    if (!/^[A-Za-z0-9+/]+={0,2}$/.test(key.secret)) fail(file, `${at}.secret`, 'is not base64');
    return { name: key.name, secret: Buffer.from(key.secret, 'base64') };
  });
  checkEncryptionKeys(parsed, `read encryption config ${file}`);
  return { resources: new Set(names as string[]), keys: parsed };
}

export function renderEncryptionConfig(config: EncryptionConfig): string {
  return stringifyYaml({
    apiVersion: 'apiserver.config.k8s.io/v1',
    kind: 'EncryptionConfiguration',
    resources: [
      {
        resources: [...config.resources],
        providers: [
          {
            aesgcm: {
              keys: config.keys.map((key) => ({ name: key.name, secret: key.secret.toString('base64') })),
            },
          },
          { identity: {} },
        ],
      },
    ],
  });
}

/** A new 256-bit key named after the moment it was made. */
export function newEncryptionKey(now = new Date()): EncryptionKey {
  const stamp = now.toISOString().replace(/[-:T]/g, '').slice(0, 14);
  return { name: `key-${stamp}-${randomBytes(3).toString('hex')}`, secret: randomBytes(32) };
}

/** Reads the config; NotFoundError when the file is missing. */
export async function readEncryptionConfig(file: string): Promise<EncryptionConfig> {
  let text: string;
  try {
    const mode = (await stat(file)).mode;
    if ((mode & 0o077) !== 0) {
      throw new FailedPreconditionError(
        `read encryption config ${file}: it holds the keys of Secrets at rest and is readable by others (mode ${(mode & 0o777).toString(8)}); chmod 600 ${file}`,
      );
    }
    text = await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new NotFoundError(`read encryption config ${file}: no such file`);
    }
    throw err;
  }
  return parseEncryptionConfig(text, file);
}

export async function writeEncryptionConfig(file: string, config: EncryptionConfig): Promise<void> {
  await mkdir(dirname(file), { recursive: true, mode: 0o700 });
  await writeFileAtomic(file, renderEncryptionConfig(config), { mode: 0o600 });
}

/** The config in `file`, made with one new key for Secrets when there is none yet. */
export async function ensureEncryptionConfig(file: string): Promise<EncryptionConfig> {
  try {
    return await readEncryptionConfig(file);
  } catch (err) {
    if (!(err instanceof NotFoundError)) throw err;
    const config: EncryptionConfig = { resources: new Set(['secrets']), keys: [newEncryptionKey()] };
    await writeEncryptionConfig(file, config);
    return config;
  }
}

/** Whether two configs say the same (resources, keys and their order). */
export function sameEncryptionConfig(a: EncryptionConfig, b: EncryptionConfig): boolean {
  return renderEncryptionConfig(a) === renderEncryptionConfig(b);
}

/**
 * `first`'s keys in its order, then those of `then` that `first` lacks, and the resources of both:
 * a config that comes from elsewhere (the cluster's record, another control plane's rotation) may
 * not know a key yet, and a key once held must stay, for values may be encrypted with it. Keys are
 * told apart by name; FailedPreconditionError when the two hold different secrets under one name
 * (one was edited by hand), naming the key and both places.
 */
export function mergeEncryptionConfigs(
  first: EncryptionConfig,
  then: EncryptionConfig,
  places: { first: string; then: string },
): EncryptionConfig {
  const byName = new Map(first.keys.map((key) => [key.name, key]));
  const keys = [...first.keys];
  for (const key of then.keys) {
    const held = byName.get(key.name);
    if (held === undefined) keys.push(key);
    else if (!held.secret.equals(key.secret))
      throw new FailedPreconditionError(
        `merge encryption configs: key "${key.name}" has one secret in ${places.first} and another in ${places.then}; one was changed by hand. Values encrypted with it open with one of them only: put back the secret they were written with in both, or give the other a new name`,
      );
  }
  return { resources: new Set([...first.resources, ...then.resources]), keys };
}

/**
 * This control plane's encryption config: its file and the keys the store uses, changed only by
 * `take`, one change at a time, and only by merging (mergeEncryptionConfigs), so that no change,
 * from here or from elsewhere and in whatever order they come, drops a key.
 */
export class LocalEncryptionConfig {
  private changes: Promise<unknown> = Promise.resolve();

  constructor(
    readonly file: string,
    private current: EncryptionConfig,
    /** Puts keys in use (EncryptingStore.setKeys). */
    private readonly use: (config: EncryptionConfig) => void,
  ) {}

  get config(): EncryptionConfig {
    return this.current;
  }

  /**
   * Takes `incoming` (from `source`, for messages) over the config held: its keys first, in its
   * order (its first encrypts from now on), then any held key it lacks. In the file first, then in
   * use: a key that encrypted a value is on disk, whatever happens next. The config now held.
   */
  take(incoming: EncryptionConfig, source: string): Promise<EncryptionConfig> {
    const change = this.changes.then(async () => {
      const merged = mergeEncryptionConfigs(incoming, this.current, { first: source, then: this.file });
      if (sameEncryptionConfig(merged, this.current)) return this.current;
      await writeEncryptionConfig(this.file, merged);
      this.use(merged);
      this.current = merged;
      return merged;
    });
    this.changes = change.catch(() => undefined);
    return change;
  }
}
