/**
 * What a controller has asked the API for and not yet seen in its informer (Kubernetes'
 * ControllerExpectations). A ReplicaSet that created 5 pods must not count its pods again before the
 * informer holds those 5, or it would create them twice; so it expects 5 creations, the pod
 * informer's handler marks each one seen, and the controller changes nothing for that owner until
 * all are seen (or `ttlMs` passes: a watch event lost for good must not freeze the owner for ever).
 * Deletions are expected by pod key, since a pod already on its way out may be deleted twice.
 */
import type { Clock } from '../../../proto/informer/work-queue.js';

/** Kubernetes' ExpectationsTimeout. */
const DEFAULT_TTL_MS = 5 * 60 * 1000;

interface Expected {
  creations: number;
  deletions: Set<string>;
  since: number;
}

export class Expectations {
  private readonly byOwner = new Map<string, Expected>();
  private readonly ttlMs: number;

  constructor(
    private readonly clock: Pick<Clock, 'now'> = Date,
    ttlMs = DEFAULT_TTL_MS,
  ) {
    this.ttlMs = ttlMs;
  }

  /** True when nothing asked for is still unseen (or it was asked for more than the ttl ago). */
  satisfied(owner: string): boolean {
    const expected = this.byOwner.get(owner);
    if (expected === undefined) return true;
    if (
      (expected.creations <= 0 && expected.deletions.size === 0) ||
      this.clock.now() - expected.since > this.ttlMs
    ) {
      this.byOwner.delete(owner);
      return true;
    }
    return false;
  }

  expectCreations(owner: string, count: number): void {
    this.entry(owner).creations += count;
  }

  expectDeletions(owner: string, podKeys: readonly string[]): void {
    const expected = this.entry(owner);
    for (const key of podKeys) expected.deletions.add(key);
  }

  /** A creation was seen, or will never come (the create failed). */
  creationObserved(owner: string): void {
    const expected = this.byOwner.get(owner);
    if (expected !== undefined) expected.creations--;
  }

  /** The pod is gone or going (deletionTimestamp), or its delete failed. */
  deletionObserved(owner: string, podKey: string): void {
    this.byOwner.get(owner)?.deletions.delete(podKey);
  }

  /** The owner is gone: forget what it waited for. */
  forget(owner: string): void {
    this.byOwner.delete(owner);
  }

  private entry(owner: string): Expected {
    if (this.satisfied(owner))
      this.byOwner.set(owner, { creations: 0, deletions: new Set(), since: this.clock.now() });
    const expected = this.byOwner.get(owner)!;
    expected.since = this.clock.now();
    return expected;
  }
}
