/**
 * One leader among the control planes that share an etcd: it runs the scheduler and the
 * controllers; the others serve the API and wait (DESIGN.md, "Scale and failure").
 *
 * Leadership is the Lease object `kube-system/<name>` (`skiff get leases -n kube-system` shows the
 * holder), written with an etcd lease attached, as create-if-absent:
 *
 *   grant an etcd lease (ttl) ─► create the Lease ──► leading: every ttl/3 keepAlive + read the key;
 *          ▲                        │ exists          lead(signal)
 *          │                        ▼                        │ the lease or the key is gone or was
 *          └──── deleted ◄── watch kube-system leases        │ rewritten, or no renewal succeeded
 *                (or every ttl)                              ▼ within 2/3 ttl of being sent
 *                                                    signal aborts; wait for lead() to return
 *
 * The key goes with the etcd lease: when a leader dies, etcd deletes it `ttl` seconds after its
 * last keepAlive, the standbys see the delete and one create wins. A leader that cannot renew
 * (etcd unreachable from it) steps down 2/3 of the ttl after the last renewal it sent, before its
 * lease can expire; its work must stop within the remaining third. The API refuses writes to this
 * Lease (KindStrategy.keptBelowTheApi), and a leader that finds its key deleted or rewritten all
 * the same (etcdctl, a restore) steps down at its next renewal. The writes leaders make are
 * compare-and-swap anyway (a pod is bound once: nodeName may be set only while empty).
 */
import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import { AlreadyExistsError, NotFoundError, errorMessage } from '../../proto/errors.js';
import type { Lease as LeaseObject } from '../../proto/gen/types.js';
import { decodeObject, encodeObject } from '../../proto/objects.js';
import type { Logger } from '../../proto/support/logger.js';
import { rfc3339Seconds } from '../../proto/support/kube-time.js';
import type { LeaseId, ObjectKey, Store, StoredValue } from '../store/store.js';
import { LEADER_LEASE_NAMESPACE } from './leader-lease.js';

/** One leadership term: the etcd lease, the Lease key's revision it wrote, when the lease started. */
interface Term {
  lease: LeaseId;
  keyRevision: bigint;
  renewedAfter: number;
}

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

  /** The term this process now holds; undefined when another holds the Lease. */
  private async tryAcquire(): Promise<Term | undefined> {
    const { store } = this.options;
    // the lease's clock starts when etcd grants it, after this
    const grantedAfter = Date.now();
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
      const created = await store.create(this.key, encodeObject(object), { lease: lease.id });
      return { lease: lease.id, keyRevision: created.modRevision, renewedAfter: grantedAfter };
    } catch (err) {
      await store.revokeLease(lease.id).catch(() => {});
      if (err instanceof AlreadyExistsError) return undefined;
      throw err;
    }
  }

  private async holdLeadership({ lease, keyRevision, renewedAfter }: Term): Promise<void> {
    const { store, log } = this.options;
    const term = new AbortController();
    const stepDown = (why: string) => {
      if (term.signal.aborted) return;
      log.warn({ lease: this.options.name, identity: this.identity, why }, 'leadership lost');
      term.abort();
    };
    // stop() may have come while the create was on its way (its event has fired already)
    if (this.stopping.signal.aborted) {
      await store.revokeLease(lease).catch(() => {});
      return;
    }
    const onStop = () => term.abort();
    this.stopping.signal.addEventListener('abort', onStop);
    this.leading = true;
    log.info({ lease: this.options.name, identity: this.identity }, 'leading');
    // Step down two thirds of the ttl after the last renewal etcd can have counted from (its
    // send time, not its answer's), so the work stops before the key can expire.
    const holdMs = (this.ttlSeconds * 2000) / 3;
    let deadline: NodeJS.Timeout | undefined;
    const renewedFrom = (sentAt: number) => {
      clearTimeout(deadline);
      deadline = setTimeout(
        () => stepDown(`no renewal succeeded for ${Math.round((Date.now() - sentAt) / 1000)} s`),
        Math.max(0, sentAt + holdMs - Date.now()),
      );
    };
    renewedFrom(renewedAfter);
    const keyRewritten = (current: StoredValue): void => {
      const holder = decodeObject('Lease', current.value).spec.holderIdentity;
      if (holder !== this.identity) return stepDown(`the Lease is held by ${holder} now`);
      stepDown('the Lease was rewritten outside the election');
      // still naming this process, it was written without the etcd lease: it would never expire,
      // and nobody would lead again
      store.delete(this.key, current.modRevision).catch(() => {});
    };
    const renew = setInterval(() => {
      const sentAt = Date.now();
      // the key is checked too: a Lease deleted or rewritten behind the election (etcdctl, a restore)
      // means another may lead now
      Promise.all([store.keepAlive(lease), store.get(this.key)]).then(
        ([, current]) => {
          if (current.modRevision === keyRevision) renewedFrom(sentAt);
          else keyRewritten(current);
        },
        (err) => {
          if (err instanceof NotFoundError) stepDown('the lease expired or the Lease was deleted');
          else log.warn({ err: errorMessage(err) }, 'renewing the leader lease failed; retrying');
        },
      );
    }, holdMs / 2);
    // and at once when the key changes under it
    void (async () => {
      try {
        for await (const event of store.watch('leases', {
          namespace: LEADER_LEASE_NAMESPACE,
          afterRevision: keyRevision,
          signal: term.signal,
        })) {
          if (event.type === 'progress' || event.item.key.name !== this.options.name) continue;
          if (event.type === 'deleted') stepDown('the Lease was deleted');
          else keyRewritten(event.item);
          return;
        }
      } catch {
        // the renewals above still check the key
      }
    })();
    try {
      await this.options.lead(term.signal);
      // lead() returned on its own: keep the lease until told otherwise
      if (!term.signal.aborted)
        await new Promise((resolve) => term.signal.addEventListener('abort', resolve));
    } catch (err) {
      log.error({ err: errorMessage(err) }, 'the leader work failed; stepping down');
    } finally {
      clearInterval(renew);
      clearTimeout(deadline);
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
    if (this.stopping.signal.aborted) return;
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
