/**
 * Which control plane holds each node's tunnel, for the control planes of one cluster: kept in
 * etcd under one lease per control plane, so a control plane that dies takes its entries with it
 * when the lease expires (TTL 10 s).
 *
 *   <prefix>/controlplanes/<name>   {address, startedAt}            the control plane, while alive
 *   <prefix>/tunnels/<node>         {controlPlane, address}         who holds node's tunnel now
 *
 * `address` is where other control planes reach this one's API (its --advertise-address). A
 * tunnel opened here overwrites the node's entry whoever wrote it (the agent moved here); a tunnel
 * closed here removes it only if it is still this control plane's write (compared by revision), so
 * a late close never erases the entry of the control plane the agent moved to. Every other write
 * of an entry (when the lease was lost, etcd unreachable past the TTL, and a new one granted; when
 * the first write failed) claims it: created when absent, rewritten when it is still this control
 * plane's, and left alone when it names another, which opened a tunnel of the node since (this
 * one's may be a half-dead one not yet noticed). A claim that found another's entry is tried again
 * at every renewal, so that when that entry goes (its tunnel closed) this one's takes its place.
 * Writes go one at a time, in the order asked.
 */
import { AlreadyExistsError, ConflictError, NotFoundError, errorMessage } from '../../proto/errors.js';
import type { Logger } from '../../proto/support/logger.js';
import type { LeaseId, ObjectKey, Store } from '../store/store.js';

export interface TunnelHolder {
  controlPlane: string;
  address: string;
}

/** What pod streams need of the registry. */
export interface TunnelRegistry {
  /** This control plane's name. */
  readonly self: string;
  /** This control plane holds `node`'s tunnel from now on. */
  held(node: string): void;
  /** It no longer does. */
  released(node: string): void;
  /** Who holds `node`'s tunnel, as etcd says now; undefined when no one. */
  holderOf(node: string): Promise<TunnelHolder | undefined>;
}

const LEASE_TTL_SECONDS = 10;
const tunnelKey = (node: string): ObjectKey => ({ resource: 'tunnels', name: node });

/** The holder a tunnel entry names; undefined when it names none. */
function holderIn(bytes: Uint8Array): TunnelHolder | undefined {
  let value: Partial<TunnelHolder>;
  try {
    value = JSON.parse(Buffer.from(bytes).toString('utf8')) as Partial<TunnelHolder>;
  } catch {
    return undefined;
  }
  if (typeof value?.controlPlane !== 'string' || typeof value.address !== 'string') return undefined;
  return { controlPlane: value.controlPlane, address: value.address };
}

export interface EtcdTunnelRegistryOptions {
  /** etcd without the encryption layer. */
  store: Store;
  name: string;
  log: Logger;
  /** How often the lease is renewed; default a third of its TTL. */
  keepAliveMs?: number;
}

export class EtcdTunnelRegistry implements TunnelRegistry {
  readonly self: string;
  /**
   * Nodes held here, with the revision of this control plane's entry of each; undefined until it
   * is written (a write failed, or another's entry stood in the way of a claim).
   */
  private readonly mine = new Map<string, bigint | undefined>();
  private lease: LeaseId | undefined;
  private writes: Promise<void> = Promise.resolve();
  private timer: NodeJS.Timeout | undefined;
  private closed = false;
  private address = '';

  constructor(private readonly options: EtcdTunnelRegistryOptions) {
    this.self = options.name;
  }

  /**
   * Registers this control plane (a lease, its record) at `address`, where other control planes
   * reach its API; then renews the lease until close().
   */
  async start(address: string): Promise<void> {
    this.address = address;
    await this.renew();
    const every = this.options.keepAliveMs ?? (LEASE_TTL_SECONDS * 1000) / 3;
    const tick = (): void => {
      this.timer = setTimeout(() => {
        void this.enqueue(() => this.keepAlive()).finally(() => {
          if (!this.closed) tick();
        });
      }, every);
      this.timer.unref();
    };
    tick();
  }

  held(node: string): void {
    this.mine.set(node, undefined);
    void this.enqueue(() => this.publish(node, 'overwrite'));
  }

  released(node: string): void {
    void this.enqueue(async () => {
      const revision = this.mine.get(node);
      if (!this.mine.delete(node) || revision === undefined) return;
      try {
        await this.options.store.delete(tunnelKey(node), revision);
      } catch (err) {
        // overwritten by the control plane the agent moved to, or gone with an old lease
        if (!(err instanceof ConflictError) && !(err instanceof NotFoundError)) throw err;
      }
    });
  }

  async holderOf(node: string): Promise<TunnelHolder | undefined> {
    try {
      return holderIn((await this.options.store.get(tunnelKey(node))).value);
    } catch (err) {
      if (err instanceof NotFoundError) return undefined;
      throw err;
    }
  }

  /** Resolves once the writes asked so far are done (or failed and logged). */
  async settled(): Promise<void> {
    await this.writes;
  }

  /** Stops renewing and revokes the lease: this control plane's entries go at once. */
  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.timer);
    await this.writes;
    if (this.lease !== undefined) await this.options.store.revokeLease(this.lease).catch(() => undefined);
  }

  private enqueue(write: () => Promise<void>): Promise<void> {
    this.writes = this.writes
      .then(() => (this.closed ? undefined : write()))
      .catch((err: unknown) =>
        this.options.log.warn(
          { err: errorMessage(err) },
          'tunnel registry write failed; the next renewal writes again',
        ),
      );
    return this.writes;
  }

  private async keepAlive(): Promise<void> {
    try {
      if (this.lease === undefined) throw new NotFoundError('no lease yet');
      await this.options.store.keepAlive(this.lease);
      // entries not written yet (etcd was away; another's stood in the way) are claimed again
      for (const [node, revision] of this.mine) if (revision === undefined) await this.publish(node, 'claim');
    } catch (err) {
      if (!(err instanceof NotFoundError)) throw err;
      this.options.log.warn({ controlPlane: this.self }, 'tunnel registry lease lost; registering again');
      await this.renew();
    }
  }

  /** A new lease, the record and every node held here claimed under it. */
  private async renew(): Promise<void> {
    const lease = await this.options.store.grantLease(LEASE_TTL_SECONDS);
    this.lease = lease.id;
    for (const node of this.mine.keys()) this.mine.set(node, undefined);
    await this.put(
      { resource: 'controlplanes', name: this.self },
      { address: this.address, startedAt: new Date().toISOString() },
      'overwrite',
    );
    for (const node of this.mine.keys()) await this.publish(node, 'claim');
  }

  /** Writes the entry of `node` as this control plane's (how: see put). */
  private async publish(node: string, how: 'overwrite' | 'claim'): Promise<void> {
    if (!this.mine.has(node) || this.lease === undefined) return;
    const revision = await this.put(tunnelKey(node), { controlPlane: this.self, address: this.address }, how);
    if (revision === undefined)
      this.options.log.debug(
        { node, controlPlane: this.self },
        'tunnel entry names another control plane, which opened a tunnel of the node since; left alone',
      );
    if (this.mine.has(node)) this.mine.set(node, revision);
  }

  /**
   * Writes `value` at `key` under the lease: `overwrite` whatever was there; `claim` only where
   * nothing is or this control plane's own entry is (undefined, writing nothing, when another's
   * is). The write's revision.
   */
  private async put(key: ObjectKey, value: object, how: 'overwrite' | 'claim'): Promise<bigint | undefined> {
    const { store } = this.options;
    const bytes = Buffer.from(JSON.stringify(value), 'utf8');
    const lease = { lease: this.lease! };
    for (;;) {
      try {
        return (await store.create(key, bytes, lease)).modRevision;
      } catch (err) {
        if (!(err instanceof AlreadyExistsError)) throw err;
      }
      try {
        const current = await store.get(key);
        if (how === 'claim' && holderIn(current.value)?.controlPlane !== this.self) return undefined;
        return (await store.update(key, bytes, current.modRevision, lease)).modRevision;
      } catch (err) {
        // changed or removed between the two: again
        if (!(err instanceof ConflictError) && !(err instanceof NotFoundError)) throw err;
      }
    }
  }
}
