/**
 * API token records in the Store, under the `tokens` resource (etcd keys `<prefix>/tokens/<name>`),
 * as JSON. Only hashes are stored (see auth.ts).
 */
import { AlreadyExistsError, InternalError, NotFoundError, errorMessage } from '../../proto/errors.js';
import type { Store } from '../store/store.js';
import { ROLES, type TokenRecord, type TokenStore } from './auth.js';

const RESOURCE = 'tokens';

function parseRecord(name: string, value: Uint8Array): TokenRecord {
  let parsed: Partial<TokenRecord>;
  try {
    parsed = JSON.parse(Buffer.from(value).toString('utf8')) as Partial<TokenRecord>;
  } catch (err) {
    throw new InternalError(`read api token ${name}: stored record is not JSON: ${errorMessage(err)}`, {
      cause: err,
    });
  }
  if (!ROLES.includes(parsed.role as TokenRecord['role']) || !/^[0-9a-f]{64}$/.test(parsed.sha256 ?? '')) {
    throw new InternalError(`read api token ${name}: stored record lacks a valid role or sha256`);
  }
  if (parsed.expiresAt !== undefined && Number.isNaN(Date.parse(parsed.expiresAt))) {
    throw new InternalError(
      `read api token ${name}: stored expiresAt ${JSON.stringify(parsed.expiresAt)} is not a time`,
    );
  }
  return {
    name,
    role: parsed.role!,
    sha256: parsed.sha256!,
    createdAt: parsed.createdAt ?? '',
    ...(parsed.expiresAt !== undefined ? { expiresAt: parsed.expiresAt } : {}),
  };
}

export class StoreTokenStore implements TokenStore {
  constructor(private readonly store: Store) {}

  async list(): Promise<TokenRecord[]> {
    const records: TokenRecord[] = [];
    let token: string | undefined;
    do {
      const page = await this.store.list(RESOURCE, { limit: 500, ...(token ? { continue: token } : {}) });
      for (const item of page.items) records.push(parseRecord(item.key.name, item.value));
      token = page.continue;
    } while (token !== undefined);
    return records;
  }

  async createIfAbsent(record: TokenRecord): Promise<boolean> {
    const value = Buffer.from(
      JSON.stringify({
        role: record.role,
        sha256: record.sha256,
        createdAt: record.createdAt,
        ...(record.expiresAt !== undefined ? { expiresAt: record.expiresAt } : {}),
      }),
    );
    try {
      await this.store.create({ resource: RESOURCE, name: record.name }, value);
      return true;
    } catch (err) {
      if (err instanceof AlreadyExistsError) return false;
      throw err;
    }
  }

  async delete(name: string): Promise<boolean> {
    try {
      await this.store.delete({ resource: RESOURCE, name });
      return true;
    } catch (err) {
      if (err instanceof NotFoundError) return false;
      throw err;
    }
  }
}

/** Token records in memory: for tests, and for a registry served without a control plane. */
export class MemoryTokenStore implements TokenStore {
  readonly records: TokenRecord[] = [];
  /** How many times the records were listed (tests of the authenticator's caching read it). */
  lists = 0;

  async list(): Promise<TokenRecord[]> {
    this.lists++;
    return [...this.records];
  }

  async createIfAbsent(record: TokenRecord): Promise<boolean> {
    if (this.records.some((r) => r.name === record.name)) return false;
    this.records.push(record);
    return true;
  }

  async delete(name: string): Promise<boolean> {
    const at = this.records.findIndex((r) => r.name === name);
    if (at < 0) return false;
    this.records.splice(at, 1);
    return true;
  }
}
