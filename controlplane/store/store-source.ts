/** An informer source (proto/informer/list-watch-source.ts) over a Store in this process. */
import type { ListWatchSource, SourceItem } from '../../proto/informer/list-watch-source.js';
import { describeKey, type ObjectKey, type Store, type StoredValue } from './store.js';

export interface StoreSourceOptions<T> {
  store: Store;
  resource: string;
  /** Only this namespace; every namespace when absent. */
  namespace?: string;
  /**
   * The object of a stored value. `stored` is the store's own value: a decoder may share one
   * decoded object per value with the process's other readers (ApiHandlers.cachedObject), since
   * an informer's objects are read-only.
   */
  decode: (bytes: Uint8Array, key: ObjectKey, stored: StoredValue) => T;
}

/** A resource of a Store in this process, decoded with `decode`. */
export function storeSource<T>(options: StoreSourceOptions<T>): ListWatchSource<T> {
  const { store, resource, namespace, decode } = options;
  const read = (stored: StoredValue): SourceItem<T> => {
    const key = describeKey(stored.key);
    try {
      const object = decode(stored.value, stored.key, stored);
      // the bytes hold the version the writer read, not the one this write made: a cached object
      // carries its real resourceVersion, as the API's answers do, so a compare-and-swap from the
      // cache is not refused as stale
      const metadata = (object as { metadata?: { resourceVersion?: string } } | undefined)?.metadata;
      const resourceVersion = stored.modRevision.toString();
      if (metadata !== undefined && metadata.resourceVersion !== resourceVersion)
        metadata.resourceVersion = resourceVersion;
      return { key, modRevision: stored.modRevision, object };
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
