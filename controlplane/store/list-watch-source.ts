/**
 * Where an informer's objects come from. The informer (informer.ts) is the same in every process;
 * only its source differs: a Store in the control plane (storeSource, here), the API anywhere
 * else (apiSource, api-source.ts).
 *
 * Keys are `namespace/name` (`name` when cluster-scoped). `resumeAfter` on each event is the
 * revision a watch restarted after this event must start from: the event's own revision once the
 * last event of that revision has arrived, the one before until then (several objects can share
 * one revision), so a restart may repeat one revision's events but never loses one.
 */
import { describeKey, type ObjectKey, type Store, type StoredValue } from './store.js';

/** An object as the source holds it, or why it could not be read (left out of the cache). */
export type SourceItem<T> =
  { key: string; modRevision: bigint; object: T } | { key: string; modRevision: bigint; unreadable: string };

export interface SourcePage<T> {
  items: SourceItem<T>[];
  /** The revision every page of this list is read at; watch from here. */
  revision: bigint;
  /** Present while more pages follow. */
  continue?: string;
}

export type SourceEvent<T> =
  | { type: 'added' | 'modified'; item: SourceItem<T>; resumeAfter: bigint }
  | { type: 'deleted'; key: string; resumeAfter: bigint }
  /** Nothing changed up to `revision`. */
  | { type: 'progress'; revision: bigint };

export interface ListWatchSource<T> {
  /** What it lists, for logs: `pods`, `pods in namespace web`. */
  readonly description: string;
  list(options: { limit: number; continue?: string }): Promise<SourcePage<T>>;
  /** Changes after `afterRevision`, until `signal` aborts; GoneError when that is compacted. */
  watch(afterRevision: bigint, signal: AbortSignal): AsyncIterable<SourceEvent<T>>;
}

export interface StoreSourceOptions<T> {
  store: Store;
  resource: string;
  /** Only this namespace; every namespace when absent. */
  namespace?: string;
  decode: (bytes: Uint8Array, key: ObjectKey) => T;
}

/** A resource of a Store in this process, decoded with `decode`. */
export function storeSource<T>(options: StoreSourceOptions<T>): ListWatchSource<T> {
  const { store, resource, namespace, decode } = options;
  const read = (stored: StoredValue): SourceItem<T> => {
    const key = describeKey(stored.key);
    try {
      return { key, modRevision: stored.modRevision, object: decode(stored.value, stored.key) };
    } catch (err) {
      return {
        key,
        modRevision: stored.modRevision,
        unreadable: err instanceof Error ? err.message : String(err),
      };
    }
  };
  return {
    description: namespace === undefined ? resource : `${resource} in namespace ${namespace}`,
    async list({ limit, continue: token }) {
      const page = await store.list(resource, {
        ...(namespace !== undefined ? { namespace } : {}),
        limit,
        ...(token !== undefined ? { continue: token } : {}),
      });
      return {
        items: page.items.map(read),
        revision: page.revision,
        ...(page.continue !== undefined ? { continue: page.continue } : {}),
      };
    },
    async *watch(afterRevision, signal) {
      const events = store.watch(resource, {
        ...(namespace !== undefined ? { namespace } : {}),
        afterRevision,
        signal,
      });
      for await (const event of events) {
        if (event.type === 'progress') {
          yield event;
          continue;
        }
        const revision = event.type === 'deleted' ? event.revision : event.item.modRevision;
        const resumeAfter = event.lastOfRevision ? revision : revision - 1n;
        if (event.type === 'deleted')
          yield { type: 'deleted', key: describeKey(event.item.key), resumeAfter };
        else yield { type: event.type, item: read(event.item), resumeAfter };
      }
    },
  };
}
