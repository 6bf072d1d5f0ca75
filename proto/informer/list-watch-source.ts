/**
 * Where an informer's objects come from. The informer (informer.ts) is the same in every process;
 * only its source differs: a Store in the control plane (storeSource,
 * controlplane/store/store-source.ts), the API anywhere else (apiSource, api-source.ts).
 *
 * Keys are `namespace/name` (`name` when cluster-scoped). `resumeAfter` on each event is the
 * revision a watch restarted after this event must start from: the event's own revision once the
 * last event of that revision has arrived, the one before until then (several objects can share
 * one revision), so a restart may repeat one revision's events but never loses one.
 */

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
