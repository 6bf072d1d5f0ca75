/** The indexes controllers look objects up by, on the shared informers (one function per index). */
import type { KubeObject } from '../../../proto/gen/types.js';
import type { Informer } from '../../../proto/informer/informer.js';

export const NAMESPACE_INDEX = 'namespace';

const byNamespace = (object: KubeObject): readonly string[] => [object.metadata.namespace ?? ''];

/** Files the informer's objects by namespace (once, whichever controller asks first). */
export function indexByNamespace<T extends KubeObject>(informer: Informer<T>): void {
  informer.addIndex(NAMESPACE_INDEX, byNamespace);
}
