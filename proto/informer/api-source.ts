/**
 * An informer source over the skiff API (proto/client.ts), for processes that do not hold the
 * store: agents, controllers run elsewhere, the CLI. Lists are consistent paged reads; the watch
 * asks for bookmarks (progress), and each event's resourceVersion is already the revision to
 * resume after (see api.proto, WatchEvent). With a selector, an object that stops matching
 * arrives as DELETED and one that starts matching as ADDED, so the cache holds the selection.
 */
import type { ApiClient } from '../client.js';
import type { KubeObject } from '../gen/types.js';
import type { ListWatchSource, SourceItem } from './list-watch-source.js';

export interface ApiSourceOptions {
  api: ApiClient;
  /** A kind as kubectl spells it: `Pod`, `pods`, `po`. */
  kind: string;
  /** Only this namespace; every namespace when absent. */
  namespace?: string;
  labelSelector?: string;
  fieldSelector?: string;
}

function keyOf(object: KubeObject): string {
  const { namespace, name } = object.metadata;
  return namespace ? `${namespace}/${name}` : name!;
}

function itemOf<T extends KubeObject>(object: KubeObject): SourceItem<T> {
  return {
    key: keyOf(object),
    modRevision: BigInt(object.metadata.resourceVersion ?? '0'),
    object: object as T,
  };
}

export function apiSource<T extends KubeObject = KubeObject>(options: ApiSourceOptions): ListWatchSource<T> {
  const { api, kind } = options;
  const scope = {
    ...(options.namespace ? { namespace: options.namespace } : {}),
    ...(options.labelSelector ? { labelSelector: options.labelSelector } : {}),
    ...(options.fieldSelector ? { fieldSelector: options.fieldSelector } : {}),
  };
  const selectors = [options.labelSelector, options.fieldSelector].filter(Boolean).join(', ');
  return {
    description: `${kind}${options.namespace ? ` in namespace ${options.namespace}` : ''}${selectors ? ` (${selectors})` : ''}`,
    async list({ limit, continue: token }) {
      const page = await api.list(kind, {
        ...scope,
        limit,
        ...(token !== undefined ? { continue: token } : {}),
      });
      return {
        items: page.items.map((object) => itemOf<T>(object)),
        revision: BigInt(page.resourceVersion),
        ...(page.continue !== undefined ? { continue: page.continue } : {}),
      };
    },
    async *watch(afterRevision, signal) {
      const events = api.watch(kind, {
        ...scope,
        resourceVersion: afterRevision.toString(),
        allowBookmarks: true,
        signal,
      });
      for await (const event of events) {
        const resumeAfter = BigInt(event.resourceVersion);
        if (event.type === 'BOOKMARK') yield { type: 'progress', revision: resumeAfter };
        else if (event.type === 'DELETED') yield { type: 'deleted', key: keyOf(event.object!), resumeAfter };
        else
          yield {
            type: event.type === 'ADDED' ? 'added' : 'modified',
            item: itemOf<T>(event.object!),
            resumeAfter,
          };
      }
    },
  };
}
