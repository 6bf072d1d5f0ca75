/**
 * A rotation of the keys of Secrets at rest: a new key first in the encryption config (older keys
 * kept, so backups still decrypt), then every encrypted resource rewritten under it.
 *
 * With several control planes the cluster's record stores the new key (`share`) before this one
 * uses it: a key that encrypted a value here before it was stored there would be lost with this
 * control plane's disk, and the others could not read that value meanwhile. When the store fails,
 * nothing here changed.
 */
import type { EncryptingStore } from './encrypting-store.js';
import { newEncryptionKey, type EncryptionConfig, type LocalEncryptionConfig } from './encryption-config.js';

export interface EncryptionKeyRotation {
  keyName: string;
  rewritten: number;
  alreadyCurrent: number;
  resources: string[];
}

export async function rotateEncryptionKey(
  keys: LocalEncryptionConfig,
  store: EncryptingStore,
  /** Stores the config in the cluster's record; what the record holds then (merged). */
  share?: (config: EncryptionConfig) => Promise<EncryptionConfig>,
): Promise<EncryptionKeyRotation> {
  const key = newEncryptionKey();
  const next = { resources: keys.config.resources, keys: [key, ...keys.config.keys] };
  const stored = share === undefined ? next : await share(next);
  await keys.take(stored, 'this key rotation');
  let rewritten = 0;
  let alreadyCurrent = 0;
  for (const resource of keys.config.resources) {
    const result = await store.reencrypt(resource);
    rewritten += result.rewritten;
    alreadyCurrent += result.current;
  }
  return { keyName: key.name, rewritten, alreadyCurrent, resources: [...keys.config.resources] };
}
