/**
 * One leader among the control planes that share an etcd: it runs the scheduler and the
 * controllers; the others serve the API and wait (DESIGN.md, "Scale and failure").
 *
 * Leadership is the Lease object `kube-system/<name>` (`skiff get leases -n kube-system` shows the
 * holder), written with an etcd lease attached, as create-if-absent:
 *
 *   grant an etcd lease (ttl) ─► create the Lease ──► leading: keepAlive every ttl/3; lead(signal)
 *          ▲                        │ exists                 │ a keepAlive failed, or none
 *          │                        ▼                        │ succeeded for 2/3 of the ttl
 *          └──── deleted ◄── watch kube-system leases        ▼
 *                (or every ttl)                      signal aborts; wait for lead() to return
 *
 * The key goes with the etcd lease: when a leader dies, etcd deletes it `ttl` seconds after its
 * last keepAlive, the standbys see the delete and one create wins. A leader that cannot renew
 * (etcd unreachable from it) steps down before its lease can expire, so two leaders overlap only
 * when a clock is off by a third of the ttl; the writes leaders make are compare-and-swap anyway
 * (a pod is bound once: nodeName may be set only while empty).
 */
import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import { AlreadyExistsError, NotFoundError, errorMessage } from '../../proto/errors.js';
import type { Lease as LeaseObject } from '../../proto/gen/types.js';
import { encodeObject } from '../../proto/objects.js';
import type { Logger } from '../../proto/support/logger.js';
import { rfc3339Seconds } from '../../proto/support/kube-time.js';
import type { LeaseId, ObjectKey, Store } from '../store/store.js';

export const LEADER_LEASE_NAMESPACE = 'kube-system';

export interface LeaderElectionOptions {
  store: Store;
  /** The Lease's name in kube-system, e.g. `skiff-control-plane`. */
  name: string;
  /** Who this process is (the Lease's holderIdentity); default `<hostname>_<uuid>`. */
  identity?: string;
  /** Seconds a dead leader holds on; default 10. */
  ttlSeconds?: number;
  log: Logger;
  /**
   * Runs while this process leads. `signal` aborts when leadership is lost or stop() is called;
   * the returned promise must settle soon after (the next term waits for it).
   */
  lead: (signal: AbortSignal) => Promise<void>;
}

export class LeaderElection {
  readonly identity: string;
  private readonly ttlSeconds: number;
  private readonly stopping = new AbortController();
  private running: Promise<void> | undefined;
  private leading = false;

  constructor(private readonly options: LeaderElectionOptions) {
    this.identity = options.identity ?? `${hostname()}_${randomUUID()}`;
    this.ttlSeconds = options.ttlSeconds ?? 10;
    if (!Number.isInteger(this.ttlSeconds) || this.ttlSeconds < 2)
      throw new RangeError(
        `leader election ttl must be a whole number of seconds ≥ 2, not ${this.ttlSeconds}`,
      );
  }

  get isLeader(): boolean {
    return this.leading;
  }

  start(): void {
    this.running ??= this.campaign();
  }

  /** Stops leading (the lead() under way is aborted and awaited) or waiting, and lets the key go. */
  async stop(): Promise<void> {
    this.stopping.abort();
    await this.running;
  }

  private get key(): ObjectKey {
    return { resource: 'leases', namespace: LEADER_LEASE_NAMESPACE, name: this.options.name };
  }

  private async campaign(): Promise<void> {
    const { log } = this.options;
    let failures = 0;
    while (!this.stopping.signal.aborted) {
      try {
        const won = await this.tryAcquire();
        failures = 0;
        if (won) await this.holdLeadership(won);
        else await this.waitForVacancy();
      } catch (err) {
        failures++;
        if (failures === 1 || failures % 10 === 0)
          log.warn(
            { err: errorMessage(err), lease: this.options.name },
            'leader election: etcd call failed; retrying',
          );
        await sleep(Math.min(this.ttlSeconds * 1000, 250 * 2 ** Math.min(failures, 6)), this.stopping.signal);
      }
    }
  }

  /** The etcd lease, when this process now holds the Lease; undefined when another does. */
  private async tryAcquire(): Promise<LeaseId | undefined> {
    const { store } = this.options;
    const lease = await store.grantLease(this.ttlSeconds);
    const now = new Date();
    const object: LeaseObject = {
      apiVersion: 'coordination.k8s.io/v1',
      kind: 'Lease',
      metadata: {
        name: this.options.name,
        namespace: LEADER_LEASE_NAMESPACE,
        uid: randomUUID(),
        creationTimestamp: rfc3339Seconds(now),
      },
      spec: {
        holderIdentity: this.identity,
        leaseDurationSeconds: this.ttlSeconds,
        acquireTime: now.toISOString().replace('Z', '000Z'),
        renewTime: now.toISOString().replace('Z', '000Z'),
      },
    };
    try {
      await store.create(this.key, encodeObject(object), { lease: lease.id });
      return lease.id;
    } catch (err) {
      await store.revokeLease(lease.id).catch(() => {});
      if (err instanceof AlreadyExistsError) return undefined;
      throw err;
    }
  }

  private async holdLeadership(lease: LeaseId): Promise<void> {
    const { store, log } = this.options;
    const term = new AbortController();
    const stepDown = (why: string) => {
      if (term.signal.aborted) return;
      log.warn({ lease: this.options.name, identity: this.identity, why }, 'leadership lost');
      term.abort();
    };
    const onStop = () => term.abort();
    this.stopping.signal.addEventListener('abort', onStop);
    this.leading = true;
    log.info({ lease: this.options.name, identity: this.identity }, 'leading');
    const periodMs = (this.ttlSeconds * 1000) / 3;
    let renewedAt = Date.now();
    const renew = setInterval(() => {
      if (Date.now() - renewedAt > (this.ttlSeconds * 2000) / 3) {
        stepDown(`no keepAlive succeeded for ${Math.round((Date.now() - renewedAt) / 1000)} s`);
        return;
      }
      store.keepAlive(lease).then(
        () => (renewedAt = Date.now()),
        (err) => {
          if (err instanceof NotFoundError) stepDown('the lease expired');
          else log.warn({ err: errorMessage(err) }, 'leader lease keepAlive failed; retrying');
        },
      );
    }, periodMs);
    try {
      await this.options.lead(term.signal);
      // lead() returned on its own: keep the lease until told otherwise
      if (!term.signal.aborted)
        await new Promise((resolve) => term.signal.addEventListener('abort', resolve));
    } catch (err) {
      log.error({ err: errorMessage(err) }, 'the leader work failed; stepping down');
    } finally {
      clearInterval(renew);
      this.stopping.signal.removeEventListener('abort', onStop);
      this.leading = false;
      // let a standby in now rather than after the ttl
      await store.revokeLease(lease).catch(() => {});
      log.info({ lease: this.options.name, identity: this.identity }, 'no longer leading');
    }
  }

  /** Returns once the Lease is gone (watched), after a ttl at most, or on stop. */
  private async waitForVacancy(): Promise<void> {
    const { store } = this.options;
    const wait = new AbortController();
    const onStop = () => wait.abort();
    this.stopping.signal.addEventListener('abort', onStop);
    const timer = setTimeout(() => wait.abort(), this.ttlSeconds * 1000);
    try {
      let revision: bigint;
      try {
        revision = (await store.get(this.key)).modRevision;
      } catch (err) {
        if (err instanceof NotFoundError) return;
        throw err;
      }
      for await (const event of store.watch('leases', {
        namespace: LEADER_LEASE_NAMESPACE,
        afterRevision: revision,
        signal: wait.signal,
      })) {
        if (event.type === 'deleted' && event.item.key.name === this.options.name) return;
      }
    } finally {
      clearTimeout(timer);
      this.stopping.signal.removeEventListener('abort', onStop);
    }
  }
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done);
  });
}
