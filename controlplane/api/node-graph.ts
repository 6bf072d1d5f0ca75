/**
 * The node authorizer's view of the pods (node-authorizer.ts NodeGraph), read from the Store with
 * "any state will do" (minRevision 0): CachedStore answers from memory, a node's pods through its
 * spec.nodeName index.
 */
import { NotFoundError } from '../../proto/errors.js';
import type { Pod } from '../../proto/gen/types.js';
import { decodeObject } from '../../proto/objects.js';
import type { Store } from '../store/store.js';
import type { NodeGraph } from './node-authorizer.js';

export class StoreNodeGraph implements NodeGraph {
  constructor(private readonly store: Store) {}

  async pod(namespace: string, name: string): Promise<Pod | undefined> {
    if (namespace === '' || name === '') return undefined;
    try {
      const item = await this.store.get({ resource: 'pods', namespace, name }, { minRevision: 0n });
      return decodeObject('Pod', item.value);
    } catch (err) {
      if (err instanceof NotFoundError) return undefined;
      throw err;
    }
  }

  async nodeLabels(name: string): Promise<Record<string, string> | undefined> {
    if (name === '') return undefined;
    try {
      const item = await this.store.get({ resource: 'nodes', name }, { minRevision: 0n });
      return decodeObject('Node', item.value).metadata.labels ?? {};
    } catch (err) {
      if (err instanceof NotFoundError) return undefined;
      throw err;
    }
  }

  async podsOn(node: string): Promise<Pod[]> {
    const { items } = await this.store.list('pods', {
      minRevision: 0n,
      index: { name: 'spec.nodeName', value: node },
    });
    // the index is a hint: a store without it lists every pod
    return items.map((item) => decodeObject('Pod', item.value)).filter((pod) => pod.spec?.nodeName === node);
  }
}
