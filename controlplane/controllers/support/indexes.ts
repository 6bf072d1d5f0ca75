/** The indexes controllers look objects up by, on the shared informers (one function per index). */
import type { KubeObject, Pod } from '../../../proto/gen/types.js';
import type { Informer } from '../../../proto/informer/informer.js';

export const NAMESPACE_INDEX = 'namespace';

const byNamespace = (object: KubeObject): readonly string[] => [object.metadata.namespace ?? ''];

/** Files the informer's objects by namespace (once, whichever controller asks first). */
export function indexByNamespace<T extends KubeObject>(informer: Informer<T>): void {
  informer.addIndex(NAMESPACE_INDEX, byNamespace);
}

export const NODE_NAME_INDEX = 'nodeName';

const byNodeName = (pod: Pod): readonly string[] => (pod.spec.nodeName ? [pod.spec.nodeName] : []);

/** Files pods by the node they are bound to (unbound pods under none). */
export function indexByNodeName(informer: Informer<Pod>): void {
  informer.addIndex(NODE_NAME_INDEX, byNodeName);
}
