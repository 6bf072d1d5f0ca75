/**
 * The garbage collector deletes objects whose owners are gone, as Kubernetes' does, by
 * `metadata.ownerReferences` (uid), over the informers of the kinds it is given:
 *
 *   an owner removed (Background, the default) ─► its dependents are deleted; a dependent that
 *       still has another owner only loses the reference
 *   an owner marked with the `foregroundDeletion` finalizer (propagationPolicy Foreground)
 *       ─► its dependents are deleted (in the foreground themselves when they own others); once
 *          none with blockOwnerDeletion is left, the finalizer goes and with it the owner
 *   an owner marked with the `orphan` finalizer (Orphan) ─► its dependents lose the reference
 *       and stay; then the finalizer goes
 *   a dependent whose owner does not exist (deleted while no collector ran, or never existed)
 *       ─► deleted, found at start-up too
 *
 * An owner missing from the informers is looked up through the API before anything is deleted
 * (its informer may simply not have seen it yet), and a delete carries the dependent's uid as a
 * precondition, so a re-created object of the same name is never taken for the old one.
 */
import { NotFoundError } from '../../../proto/errors.js';
import type { KubeObject, OwnerReference } from '../../../proto/gen/types.js';
import { Controller } from '../../../proto/informer/controller.js';
import type { Informer } from '../../../proto/informer/informer.js';
import type { ReconcileResult } from '../../../proto/informer/work-queue.js';
import { kindInfoOf } from '../../../proto/kinds.js';
import type { Logger } from '../../../proto/support/logger.js';
import type { ApiHandlers } from '../../api/handlers.js';
import { FOREGROUND_DELETION_FINALIZER, ORPHAN_FINALIZER } from '../../api/object-lifecycle.js';

const BY_UID = 'uid';
const BY_OWNER_UID = 'owner-uid';
const byUid = (object: KubeObject): readonly string[] => (object.metadata.uid ? [object.metadata.uid] : []);
const byOwnerUid = (object: KubeObject): readonly string[] =>
  (object.metadata.ownerReferences ?? []).map((ref) => ref.uid);

export interface GarbageCollectorOptions {
  handlers: ApiHandlers;
  /** By kind, the informers of every kind whose objects may own others or be owned. */
  informers: ReadonlyMap<string, Informer<KubeObject>>;
  log: Logger;
  workers?: number;
}

/** What became of one owner a dependent names. */
type OwnerState = 'present' | 'absent' | 'deleting-dependents';

interface Item {
  kind: string;
  object: KubeObject;
}

export class GarbageCollector {
  private readonly controller: Controller;
  private readonly unsubscribe: (() => void)[] = [];

  constructor(private readonly options: GarbageCollectorOptions) {
    this.controller = new Controller({
      reconcile: (key) => this.reconcile(key),
      workers: options.workers ?? 5,
      log: options.log,
    });
    for (const informer of options.informers.values()) {
      informer.addIndex(BY_UID, byUid);
      informer.addIndex(BY_OWNER_UID, byOwnerUid);
    }
  }

  start(): void {
    for (const [kind, informer] of this.options.informers) {
      this.unsubscribe.push(
        informer.onChange((key, change, lastKnown) => {
          if (change !== 'deleted') return this.enqueue(kind, key);
          const gone = lastKnown?.object;
          if (gone === undefined) return;
          // its dependents lost an owner; an owner deleting its dependents first waits for it
          for (const dependent of this.dependentsOf(gone))
            this.enqueue(dependent.kind, keyOf(dependent.object));
          for (const ref of gone.metadata.ownerReferences ?? []) {
            const owner = this.cachedOwner(ref);
            if (owner !== undefined) this.enqueue(ref.kind, keyOf(owner));
          }
        }),
      );
      for (const cached of informer.list()) this.enqueue(kind, cached.key);
    }
    this.controller.start();
  }

  async stop(): Promise<void> {
    for (const off of this.unsubscribe.splice(0)) off();
    await this.controller.stop();
  }

  private enqueue(kind: string, key: string): void {
    this.controller.enqueue(`${kind}\u0000${key}`);
  }

  async reconcile(queueKey: string): Promise<ReconcileResult> {
    const [kind = '', key = ''] = queueKey.split('\u0000');
    const object = this.options.informers.get(kind)?.get(key)?.object;
    if (object === undefined) return;
    const finalizers = object.metadata.finalizers ?? [];
    if (object.metadata.deletionTimestamp) {
      if (finalizers.includes(ORPHAN_FINALIZER)) {
        await this.orphanDependents(object);
        await this.removeFinalizer(kind, object, ORPHAN_FINALIZER);
        return;
      }
      if (finalizers.includes(FOREGROUND_DELETION_FINALIZER)) {
        // the dependents' own deletions enqueue this owner again
        if (await this.deleteDependentsFirst(object)) return;
        await this.removeFinalizer(kind, object, FOREGROUND_DELETION_FINALIZER);
      }
      return;
    }
    await this.collectIfOrphaned({ kind, object });
  }

  /** Deletes a dependent none of whose owners is left, or drops the references to those gone. */
  private async collectIfOrphaned({ kind, object }: Item): Promise<void> {
    const refs = object.metadata.ownerReferences ?? [];
    if (refs.length === 0) return;
    const states = await Promise.all(
      refs.map((ref) => this.ownerState(ref, object.metadata.namespace ?? '')),
    );
    if (!states.includes('absent') && !states.includes('deleting-dependents')) return;
    const { handlers, log } = this.options;
    const namespace = object.metadata.namespace ?? '';
    const name = object.metadata.name ?? '';
    if (states.includes('present')) {
      // another owner is left: only the references to owners that are gone go
      const kept = refs.filter((_, i) => states[i] !== 'absent');
      if (kept.length === refs.length) return;
      await this.tolerateGone(
        handlers.update({ ...object, metadata: { ...object.metadata, ownerReferences: kept } }),
      );
      return;
    }
    const policy =
      states.includes('deleting-dependents') && this.dependentsOf(object).length > 0
        ? 'Foreground'
        : 'Background';
    log.info({ kind, object: `${namespace}/${name}`, policy }, 'deleting an object whose owners are gone');
    await this.tolerateGone(
      handlers.delete(kind, namespace, name, {
        preconditions: { uid: object.metadata.uid ?? '' },
        propagationPolicy: policy,
      }),
    );
  }

  /** Deletes the dependents of an owner deleted in the foreground; true while any blocks it. */
  private async deleteDependentsFirst(owner: KubeObject): Promise<boolean> {
    const { handlers } = this.options;
    let blocking = false;
    for (const { kind, object } of this.dependentsOf(owner)) {
      const ref = object.metadata.ownerReferences?.find((r) => r.uid === owner.metadata.uid);
      if (ref?.blockOwnerDeletion) blocking = true;
      if (object.metadata.deletionTimestamp) continue;
      await this.tolerateGone(
        handlers.delete(kind, object.metadata.namespace ?? '', object.metadata.name ?? '', {
          preconditions: { uid: object.metadata.uid ?? '' },
          propagationPolicy: this.dependentsOf(object).length > 0 ? 'Foreground' : 'Background',
        }),
      );
    }
    return blocking;
  }

  private async orphanDependents(owner: KubeObject): Promise<void> {
    for (const { object } of this.dependentsOf(owner)) {
      const ownerReferences = (object.metadata.ownerReferences ?? []).filter(
        (r) => r.uid !== owner.metadata.uid,
      );
      await this.tolerateGone(
        this.options.handlers.update({ ...object, metadata: { ...object.metadata, ownerReferences } }),
      );
    }
  }

  private async removeFinalizer(kind: string, object: KubeObject, finalizer: string): Promise<void> {
    const finalizers = (object.metadata.finalizers ?? []).filter((f) => f !== finalizer);
    this.options.log.info(
      { kind, object: keyOf(object), finalizer },
      'dependents dealt with; finalizer removed',
    );
    await this.tolerateGone(
      this.options.handlers.update({ ...object, metadata: { ...object.metadata, finalizers } }),
    );
  }

  private dependentsOf(owner: KubeObject): Item[] {
    const uid = owner.metadata.uid;
    if (!uid) return [];
    const found: Item[] = [];
    for (const [kind, informer] of this.options.informers)
      for (const cached of informer.byIndex(BY_OWNER_UID, uid)) found.push({ kind, object: cached.object });
    return found;
  }

  private cachedOwner(ref: OwnerReference): KubeObject | undefined {
    return this.options.informers.get(ref.kind)?.byIndex(BY_UID, ref.uid)[0]?.object;
  }

  /** Whether the owner a reference names exists; the API is asked when the informers lack it. */
  private async ownerState(ref: OwnerReference, namespace: string): Promise<OwnerState> {
    let owner = this.cachedOwner(ref);
    if (owner === undefined) {
      let namespaced: boolean;
      try {
        namespaced = kindInfoOf(ref.kind).namespaced;
      } catch {
        return 'present'; // a kind skiff does not serve: never collect on its account
      }
      try {
        const live = (await this.options.handlers.get(ref.kind, namespaced ? namespace : '', ref.name))
          .object;
        if (live.metadata.uid !== ref.uid) return 'absent';
        owner = live;
      } catch (err) {
        if (err instanceof NotFoundError) return 'absent';
        throw err;
      }
    }
    return owner.metadata.deletionTimestamp &&
      owner.metadata.finalizers?.includes(FOREGROUND_DELETION_FINALIZER)
      ? 'deleting-dependents'
      : 'present';
  }

  /** A write whose object went meanwhile has nothing left to do (a conflict is retried). */
  private async tolerateGone(write: Promise<unknown>): Promise<void> {
    try {
      await write;
    } catch (err) {
      if (!(err instanceof NotFoundError)) throw err;
    }
  }
}

function keyOf(object: KubeObject): string {
  return object.metadata.namespace
    ? `${object.metadata.namespace}/${object.metadata.name}`
    : (object.metadata.name ?? '');
}
