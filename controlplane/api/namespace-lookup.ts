/**
 * How a create learns whether its namespace exists and is not terminating. Every namespaced
 * create asks, so the control plane answers from an informer's cache; a name the cache does not
 * hold (a namespace created a moment ago, or before the first sync) is read from the store.
 */
import { NotFoundError } from '../../proto/errors.js';
import type { Namespace } from '../../proto/gen/types.js';
import { decodeObject } from '../../proto/objects.js';
import type { Informer } from '../../proto/informer/informer.js';
import type { Store } from '../store/store.js';

export type NamespacePhase = 'Active' | 'Terminating';

export interface NamespaceLookup {
  /** The namespace's phase, or undefined when it does not exist. */
  phase(name: string): Promise<NamespacePhase | undefined>;
}

function phaseOf(ns: Namespace): NamespacePhase {
  return ns.metadata.deletionTimestamp ? 'Terminating' : 'Active';
}

/** Reads the namespace from the store on every call. */
export class StoreNamespaceLookup implements NamespaceLookup {
  constructor(private readonly store: Store) {}

  async phase(name: string): Promise<NamespacePhase | undefined> {
    try {
      return phaseOf(
        decodeObject('Namespace', (await this.store.get({ resource: 'namespaces', name })).value),
      );
    } catch (err) {
      if (err instanceof NotFoundError) return undefined;
      throw err;
    }
  }
}

/**
 * Answers from a namespaces informer, falling back to the store for names it does not hold.
 * Namespaces this process has just marked for deletion count as Terminating at once, before the
 * informer sees the mark, so a create right after the delete is refused.
 */
export class CachedNamespaceLookup implements NamespaceLookup {
  private readonly fallback: StoreNamespaceLookup;
  private readonly markedHere = new Set<string>();

  constructor(
    private readonly informer: Informer<Namespace>,
    store: Store,
  ) {
    this.fallback = new StoreNamespaceLookup(store);
  }

  /** Records that this process marked `name` for deletion. */
  noteTerminating(name: string): void {
    this.markedHere.add(name);
  }

  async phase(name: string): Promise<NamespacePhase | undefined> {
    const cached = this.informer.hasSynced() ? this.informer.get(name) : undefined;
    if (this.markedHere.has(name)) {
      // Once the informer shows the mark (or the namespace is gone), it knows better.
      if (cached === undefined || phaseOf(cached.object) === 'Terminating') this.markedHere.delete(name);
      if (cached !== undefined) return 'Terminating';
    }
    return cached ? phaseOf(cached.object) : this.fallback.phase(name);
  }
}
