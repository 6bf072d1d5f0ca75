/**
 * Encryption at rest: a Store in front of another that encrypts the values of chosen resources
 * (Secrets) on every write and decrypts them on every read and watch, as Kubernetes' `aesgcm`
 * provider does. Below it etcd holds only ciphertext; above it (the watch cache, the API) every
 * value is plain.
 *
 * A stored value is `k8s:enc:aesgcm:v1:<key name>:` + a random 12-byte nonce + AES-GCM ciphertext
 * + the 16-byte tag, authenticated with the object's `resource/namespace/name` so a value copied
 * under another key does not decrypt. The first key encrypts; every key decrypts (the key name in
 * the value says which), so keys rotate: add a key first, then `reencrypt` rewrites every value
 * under it. A value without the prefix is read as written before encryption was on (plaintext).
 */
import { createCipheriv, createDecipheriv, randomBytes, type CipherGCMTypes } from 'node:crypto';
import { ConflictError, InternalError, InvalidArgumentError, NotFoundError } from '../../proto/errors.js';
import { pathOf } from './keys.js';
import type {
  GetOptions,
  Lease,
  LeaseId,
  ListOptions,
  ListResult,
  ObjectKey,
  Store,
  StoredValue,
  StoreEvent,
  WatchOptions,
  Write,
  WriteOptions,
} from './store.js';

export interface EncryptionKey {
  /** Names the key inside every value it encrypted; letters, digits, `-`, `_`, `.`. */
  name: string;
  /** 16, 24 or 32 bytes (AES-128, -192, -256). */
  secret: Buffer;
}

const PREFIX = 'k8s:enc:aesgcm:v1:';
const NONCE_BYTES = 12;
const TAG_BYTES = 16;
const KEY_NAME = /^[A-Za-z0-9._-]{1,64}$/;

export function checkEncryptionKeys(keys: readonly EncryptionKey[], source: string): void {
  if (keys.length === 0) throw new InvalidArgumentError(`${source}: no encryption keys`, 'keys');
  const names = new Set<string>();
  for (const [i, key] of keys.entries()) {
    if (!KEY_NAME.test(key.name)) {
      throw new InvalidArgumentError(
        `${source}: keys[${i}].name "${key.name}" must be 1-64 letters, digits, '-', '_' or '.'`,
        `keys[${i}].name`,
      );
    }
    if (names.has(key.name))
      throw new InvalidArgumentError(`${source}: key name "${key.name}" appears twice`, `keys[${i}].name`);
    names.add(key.name);
    if (![16, 24, 32].includes(key.secret.length)) {
      throw new InvalidArgumentError(
        `${source}: keys[${i}].secret of "${key.name}" is ${key.secret.length} bytes; AES-GCM takes 16, 24 or 32 (32 recommended)`,
        `keys[${i}].secret`,
      );
    }
  }
}

function gcmOf(key: EncryptionKey): CipherGCMTypes {
  return `aes-${key.secret.length * 8}-gcm` as CipherGCMTypes;
}

function aadOf(key: ObjectKey): Buffer {
  return Buffer.from(`${key.resource}/${pathOf(key)}`);
}

export interface EncryptingStoreOptions {
  /** Resources whose values are encrypted, e.g. `secrets`. */
  resources: ReadonlySet<string>;
  /** The first encrypts; all decrypt. */
  keys: readonly EncryptionKey[];
}

export class EncryptingStore implements Store {
  private readonly resources: ReadonlySet<string>;
  private keys: readonly EncryptionKey[] = [];
  private byName = new Map<string, EncryptionKey>();

  constructor(
    private readonly inner: Store,
    options: EncryptingStoreOptions,
  ) {
    this.resources = options.resources;
    this.setKeys(options.keys);
  }

  /** Replaces the keys (after a rotation); values written from now on use the first. */
  setKeys(keys: readonly EncryptionKey[]): void {
    checkEncryptionKeys(keys, 'configure encryption');
    this.keys = [...keys];
    this.byName = new Map(keys.map((key) => [key.name, key]));
  }

  /** The name of the key that encrypts new values. */
  get writeKeyName(): string {
    return this.keys[0]!.name;
  }

  private encrypted(key: ObjectKey): boolean {
    return this.resources.has(key.resource);
  }

  private encrypt(key: ObjectKey, value: Uint8Array): Uint8Array {
    if (!this.encrypted(key)) return value;
    const writeKey = this.keys[0]!;
    const nonce = randomBytes(NONCE_BYTES);
    const cipher = createCipheriv(gcmOf(writeKey), writeKey.secret, nonce);
    cipher.setAAD(aadOf(key));
    const body = Buffer.concat([cipher.update(value), cipher.final()]);
    return Buffer.concat([Buffer.from(`${PREFIX}${writeKey.name}:`), nonce, body, cipher.getAuthTag()]);
  }

  /** The key name a stored value was encrypted with; undefined for a plaintext value. */
  static keyNameOf(value: Uint8Array): string | undefined {
    const bytes = Buffer.from(value.buffer, value.byteOffset, value.byteLength);
    if (bytes.length < PREFIX.length || bytes.toString('latin1', 0, PREFIX.length) !== PREFIX)
      return undefined;
    const end = bytes.indexOf(0x3a, PREFIX.length); // ':'
    return end === -1 ? '' : bytes.toString('utf8', PREFIX.length, end);
  }

  private decrypt(key: ObjectKey, value: Uint8Array): Uint8Array {
    if (!this.encrypted(key) || value.length === 0) return value;
    const name = EncryptingStore.keyNameOf(value);
    if (name === undefined) return value; // written before encryption was turned on
    const what = `decrypt ${key.resource} ${pathOf(key)}`;
    const secret = this.byName.get(name);
    if (secret === undefined) {
      throw new InternalError(
        `${what}: it was encrypted with key "${name}", which the encryption config no longer holds; add that key back`,
      );
    }
    const bytes = Buffer.from(value.buffer, value.byteOffset, value.byteLength);
    const start = PREFIX.length + Buffer.byteLength(name) + 1;
    if (bytes.length < start + NONCE_BYTES + TAG_BYTES)
      throw new InternalError(`${what}: the stored value is truncated`);
    const nonce = bytes.subarray(start, start + NONCE_BYTES);
    const tag = bytes.subarray(bytes.length - TAG_BYTES);
    const decipher = createDecipheriv(gcmOf(secret), secret.secret, nonce);
    decipher.setAAD(aadOf(key));
    decipher.setAuthTag(tag);
    try {
      return Buffer.concat([
        decipher.update(bytes.subarray(start + NONCE_BYTES, bytes.length - TAG_BYTES)),
        decipher.final(),
      ]);
    } catch {
      throw new InternalError(
        `${what}: key "${name}" does not authenticate it (the value was altered, moved from another key, or the key's secret changed)`,
      );
    }
  }

  private plain(stored: StoredValue): StoredValue {
    return this.encrypted(stored.key) ? { ...stored, value: this.decrypt(stored.key, stored.value) } : stored;
  }

  async create(key: ObjectKey, value: Uint8Array, options?: WriteOptions): Promise<StoredValue> {
    return { ...(await this.inner.create(key, this.encrypt(key, value), options)), value };
  }

  async get(key: ObjectKey, options?: GetOptions): Promise<StoredValue> {
    return this.plain(await this.inner.get(key, options));
  }

  async update(
    key: ObjectKey,
    value: Uint8Array,
    expectedModRevision: bigint,
    options?: WriteOptions,
  ): Promise<StoredValue> {
    return {
      ...(await this.inner.update(key, this.encrypt(key, value), expectedModRevision, options)),
      value,
    };
  }

  async delete(key: ObjectKey, expectedModRevision?: bigint): Promise<StoredValue> {
    return this.plain(await this.inner.delete(key, expectedModRevision));
  }

  async list(resource: string, options?: ListOptions): Promise<ListResult> {
    const result = await this.inner.list(resource, options);
    if (!this.resources.has(resource)) return result;
    return { ...result, items: result.items.map((item) => this.plain(item)) };
  }

  async transact(writes: Write[]): Promise<StoredValue[]> {
    const sealed = writes.map((write) =>
      write.type === 'delete' ? write : { ...write, value: this.encrypt(write.key, write.value) },
    );
    const results = await this.inner.transact(sealed);
    return results.map((result, i) => {
      const write = writes[i]!;
      return write.type === 'delete' ? this.plain(result) : { ...result, value: write.value };
    });
  }

  grantLease(ttlSeconds: number): Promise<Lease> {
    return this.inner.grantLease(ttlSeconds);
  }

  keepAlive(lease: LeaseId): Promise<void> {
    return this.inner.keepAlive(lease);
  }

  revokeLease(lease: LeaseId): Promise<void> {
    return this.inner.revokeLease(lease);
  }

  async *watch(resource: string, options: WatchOptions): AsyncIterable<StoreEvent> {
    if (!this.resources.has(resource)) {
      yield* this.inner.watch(resource, options);
      return;
    }
    for await (const event of this.inner.watch(resource, options)) {
      if (event.type === 'progress') yield event;
      else if (event.type === 'modified')
        yield {
          ...event,
          item: this.plain(event.item),
          ...(event.previous !== undefined ? { previous: this.plain(event.previous) } : {}),
        };
      else yield { ...event, item: this.plain(event.item) };
    }
  }

  currentRevision(): Promise<bigint> {
    return this.inner.currentRevision();
  }

  compact(revision: bigint): Promise<void> {
    return this.inner.compact(revision);
  }

  health(): Promise<void> {
    return this.inner.health();
  }

  close(): Promise<void> {
    return this.inner.close();
  }

  /**
   * Rewrites every value of `resource` that is not under the current write key (older keys and
   * plaintext) under it, each by compare-and-swap on its revision; a value changed meanwhile is read
   * again. Returns how many were rewritten and how many were already current.
   */
  async reencrypt(resource: string): Promise<{ rewritten: number; current: number }> {
    let rewritten = 0;
    let current = 0;
    let token: string | undefined;
    do {
      const page = await this.inner.list(resource, {
        limit: 500,
        ...(token !== undefined ? { continue: token } : {}),
      });
      for (let item of page.items) {
        for (;;) {
          if (EncryptingStore.keyNameOf(item.value) === this.writeKeyName) {
            current++;
            break;
          }
          try {
            await this.inner.update(
              item.key,
              this.encrypt(item.key, this.decrypt(item.key, item.value)),
              item.modRevision,
            );
            rewritten++;
            break;
          } catch (err) {
            if (err instanceof NotFoundError) break;
            if (!(err instanceof ConflictError)) throw err;
            try {
              item = await this.inner.get(item.key);
            } catch (readErr) {
              if (readErr instanceof NotFoundError) break;
              throw readErr;
            }
          }
        }
      }
      token = page.continue;
    } while (token !== undefined);
    return { rewritten, current };
  }
}
