import { ResourceExhaustedError } from '../../proto/errors.js';
import { EventQueue } from '../../proto/support/event-queue.js';
import type { StoreEvent } from './store.js';

/** How far a watcher may fall behind before it is ended: events, and bytes of values. */
export interface WatchBacklog {
  events: number;
  bytes: number;
}

/** The stores' default: 10,000 events or 64 MiB of values. */
export function watchBacklog(limit: Partial<WatchBacklog> = {}): WatchBacklog {
  return { events: limit.events ?? 10_000, bytes: limit.bytes ?? 64 * 1024 * 1024 };
}

/**
 * The queue between a store and one watch's reader: values count towards the byte limit, and a
 * reader further behind than `backlog` is ended with ResourceExhaustedError (watch again from the
 * last revision taken), as every store ends slow watchers.
 */
export function watchEventQueue(action: string, backlog: WatchBacklog): EventQueue<StoreEvent> {
  return new EventQueue<StoreEvent>(
    backlog,
    (event) => (event.type === 'progress' ? 0 : event.item.value.byteLength),
    () =>
      new ResourceExhaustedError(
        `${action}: the watcher fell more than ${backlog.events} events or ${backlog.bytes} bytes behind; watch again from the last resourceVersion it received`,
      ),
  );
}
