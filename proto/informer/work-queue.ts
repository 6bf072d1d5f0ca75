/**
 * WorkQueue: where informer handlers put keys and reconcile workers take them (client-go's
 * rate-limited work queue, in our terms).
 *
 *   informer handler ──add(key)──► queue ──get()──► worker: reconcile(key) ──► done(key)
 *                                    ▲                        │ error: addRateLimited(key)
 *                                    └──── addAfter(key, ms) ◄┘ requeue: addAfter; success: forget
 *
 * Guarantees:
 * - A key is queued at most once however often it is added (changes coalesce: the worker reads
 *   the latest state anyway).
 * - A key is never handed to two workers at once: added again while it is being processed, it is
 *   queued only when that worker calls done(key), so no change is lost and none runs twice at once.
 * - Keys come out in the order they were first queued.
 * - addRateLimited backs a failing key off exponentially (base · 2^failures, capped), per key, and
 *   never sooner than an overall token bucket allows; forget(key) clears the key's failures.
 * - After shutDown() adds are ignored, get() resolves undefined once the queue is empty, and
 *   drained() resolves once the keys being processed are done.
 *
 * Time comes from a Clock (default: the real one), so the back-off is testable without waiting.
 */

export interface Clock {
  now(): number;
  setTimeout(fn: () => void, ms: number): { cancel(): void };
}

export const realClock: Clock = {
  now: () => Date.now(),
  setTimeout(fn, ms) {
    const timer = setTimeout(fn, ms);
    timer.unref();
    return { cancel: () => clearTimeout(timer) };
  },
};

export interface WorkQueueOptions {
  /** First retry delay of a failing key; default 5 ms. */
  baseDelayMs?: number;
  /** Longest retry delay of a failing key; default 1000 s, as client-go's. */
  maxDelayMs?: number;
  /** Overall rate of rate-limited adds (token bucket); default 10 per second, burst 100. */
  ratePerSecond?: number;
  burst?: number;
  clock?: Clock;
}

export class WorkQueue {
  private readonly queue: string[] = [];
  /** Keys waiting in `queue` or to be queued when their worker is done. */
  private readonly dirty = new Set<string>();
  private readonly processing = new Set<string>();
  private readonly waiting: ((key: string | undefined) => void)[] = [];
  private readonly delayed = new Map<string, { at: number; timer: { cancel(): void } }>();
  private readonly failures = new Map<string, number>();
  private readonly baseDelayMs: number;
  private readonly maxDelayMs: number;
  private readonly ratePerSecond: number;
  private readonly burst: number;
  private readonly clock: Clock;
  private tokens: number;
  private tokensAt: number;
  private shuttingDown = false;
  private drainWaiters: (() => void)[] = [];

  constructor(options: WorkQueueOptions = {}) {
    this.baseDelayMs = options.baseDelayMs ?? 5;
    this.maxDelayMs = options.maxDelayMs ?? 1_000_000;
    this.ratePerSecond = options.ratePerSecond ?? 10;
    this.burst = options.burst ?? 100;
    this.clock = options.clock ?? realClock;
    this.tokens = this.burst;
    this.tokensAt = this.clock.now();
  }

  /** Queues `key` unless it is already waiting; a key being processed is queued when it is done. */
  add(key: string): void {
    if (this.shuttingDown || this.dirty.has(key)) return;
    this.dirty.add(key);
    if (this.processing.has(key)) return;
    const worker = this.waiting.shift();
    if (worker !== undefined) {
      this.dirty.delete(key);
      this.processing.add(key);
      worker(key);
    } else {
      this.queue.push(key);
    }
  }

  /** Queues `key` after `delayMs`; an earlier pending delay for the key wins. */
  addAfter(key: string, delayMs: number): void {
    if (this.shuttingDown) return;
    if (delayMs <= 0) {
      this.add(key);
      return;
    }
    const at = this.clock.now() + delayMs;
    const pending = this.delayed.get(key);
    if (pending !== undefined && pending.at <= at) return;
    pending?.timer.cancel();
    const timer = this.clock.setTimeout(() => {
      this.delayed.delete(key);
      this.add(key);
    }, delayMs);
    this.delayed.set(key, { at, timer });
  }

  /** Queues a key that failed, after its back-off (see the class comment); returns the delay. */
  addRateLimited(key: string): number {
    const failures = this.failures.get(key) ?? 0;
    this.failures.set(key, failures + 1);
    const perKey = Math.min(this.baseDelayMs * 2 ** failures, this.maxDelayMs);
    const delay = Math.max(perKey, this.bucketDelay());
    this.addAfter(key, delay);
    return delay;
  }

  /** Clears the key's failures: its next addRateLimited waits the base delay again. */
  forget(key: string): void {
    this.failures.delete(key);
  }

  /** How often the key has failed since it was last forgotten. */
  failuresOf(key: string): number {
    return this.failures.get(key) ?? 0;
  }

  /** The next key, once there is one; undefined once the queue is shut down and empty. */
  get(): Promise<string | undefined> {
    const key = this.queue.shift();
    if (key !== undefined) {
      this.dirty.delete(key);
      this.processing.add(key);
      return Promise.resolve(key);
    }
    if (this.shuttingDown) return Promise.resolve(undefined);
    return new Promise((resolve) => this.waiting.push(resolve));
  }

  /** Ends the processing of `key`; if it was added meanwhile it is queued again now. */
  done(key: string): void {
    this.processing.delete(key);
    if (this.dirty.has(key)) {
      this.dirty.delete(key);
      this.add(key);
    }
    if (this.processing.size === 0) for (const resolve of this.drainWaiters.splice(0)) resolve();
  }

  /** Keys waiting to be handed out (not those being processed or delayed). */
  get length(): number {
    return this.queue.length;
  }

  shutDown(): void {
    this.shuttingDown = true;
    for (const { timer } of this.delayed.values()) timer.cancel();
    this.delayed.clear();
    for (const resolve of this.waiting.splice(0)) resolve(undefined);
  }

  /** Resolves once no key is being processed (after shutDown: once the workers are finished). */
  drained(): Promise<void> {
    if (this.processing.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.drainWaiters.push(resolve));
  }

  /** The wait the overall token bucket imposes on one more rate-limited add. */
  private bucketDelay(): number {
    const now = this.clock.now();
    this.tokens = Math.min(this.burst, this.tokens + ((now - this.tokensAt) / 1000) * this.ratePerSecond);
    this.tokensAt = now;
    this.tokens -= 1;
    return this.tokens >= 0 ? 0 : (-this.tokens / this.ratePerSecond) * 1000;
  }
}

/** What a reconcile asks for: nothing more, or another look after a delay. */
export type ReconcileResult = void | { requeueAfterMs: number };

/**
 * Runs `workers` loops that take keys from `queue` and reconcile them: a thrown error backs the
 * key off (addRateLimited) and is reported to `onError`; success forgets its failures, and a
 * requested requeue adds it after the delay. Resolves when the queue is shut down and drained.
 */
export async function runWorkers(
  queue: WorkQueue,
  workers: number,
  reconcile: (key: string) => Promise<ReconcileResult>,
  onError: (key: string, err: unknown, retryInMs: number) => void,
): Promise<void> {
  const worker = async (): Promise<void> => {
    for (;;) {
      const key = await queue.get();
      if (key === undefined) return;
      try {
        const result = await reconcile(key);
        queue.forget(key);
        if (result) queue.addAfter(key, result.requeueAfterMs);
      } catch (err) {
        onError(key, err, queue.addRateLimited(key));
      } finally {
        queue.done(key);
      }
    }
  };
  await Promise.all(Array.from({ length: workers }, worker));
}
