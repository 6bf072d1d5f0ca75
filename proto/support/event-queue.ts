/**
 * A single-consumer queue of events that can end or fail; the watch's hand-off. A consumer that
 * lets more than the limit pile up fails with `overflow()` (what was queued is dropped: it
 * resumes after what it took), so a slow reader cannot grow the process without bound.
 */
export class EventQueue<T> {
  private readonly items: T[] = [];
  private queuedBytes = 0;
  private waiting: ((result: IteratorResult<T>) => void) | undefined;
  private failWaiting: ((err: Error) => void) | undefined;
  private ended = false;
  private error: Error | undefined;

  constructor(
    private readonly limit: { events: number; bytes: number },
    private readonly sizeOf: (item: T) => number,
    private readonly overflow: () => Error,
  ) {}

  push(item: T): void {
    if (this.ended || this.error !== undefined) return;
    if (this.waiting !== undefined) {
      const resolve = this.waiting;
      this.clearWaiting();
      resolve({ done: false, value: item });
      return;
    }
    this.items.push(item);
    this.queuedBytes += this.sizeOf(item);
  }

  /**
   * Fails the queue when what is still queued is over the limit. Called before each etcd
   * response is queued, not per event: one response (a catch-up batch of up to 1000 revisions)
   * may alone exceed the limit for a consumer that keeps up, so the backlog is what is left of
   * earlier responses; a stuck consumer holds at most the limit plus one response.
   */
  failIfBehind(): boolean {
    if (this.items.length <= this.limit.events && this.queuedBytes <= this.limit.bytes) return false;
    this.items.length = 0;
    this.queuedBytes = 0;
    this.fail(this.overflow());
    return true;
  }

  /** Ends the iteration now, dropping what was not consumed yet. */
  end(): void {
    this.ended = true;
    this.items.length = 0;
    this.queuedBytes = 0;
    if (this.waiting !== undefined) {
      const resolve = this.waiting;
      this.clearWaiting();
      resolve({ done: true, value: undefined });
    }
  }

  fail(err: Error): void {
    if (this.ended || this.error !== undefined) return;
    this.error = err;
    if (this.failWaiting !== undefined) {
      const reject = this.failWaiting;
      this.clearWaiting();
      reject(err);
    }
  }

  next(): Promise<IteratorResult<T>> {
    const item = this.items.shift();
    if (item !== undefined) {
      this.queuedBytes -= this.sizeOf(item);
      return Promise.resolve({ done: false, value: item });
    }
    if (this.error !== undefined) return Promise.reject(this.error);
    if (this.ended) return Promise.resolve({ done: true, value: undefined });
    return new Promise((resolve, reject) => {
      this.waiting = resolve;
      this.failWaiting = reject;
    });
  }

  private clearWaiting(): void {
    this.waiting = undefined;
    this.failWaiting = undefined;
  }
}
