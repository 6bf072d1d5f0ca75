/**
 * The indexes controllers look pods up by, on the one shared pod informer, and how a pod names its
 * controller.
 */
import type { OwnerReference, Pod } from '../../../proto/gen/types.js';
import type { Informer } from '../../../proto/informer/informer.js';

export const POD_INDEX_NAMESPACE = 'namespace';

const byNamespace = (pod: Pod): readonly string[] => [pod.metadata.namespace ?? ''];

/** Adds the namespace index to the pod informer (once, whoever asks first). */
export function podsByNamespace(pods: Informer<Pod>): void {
  pods.addIndex(POD_INDEX_NAMESPACE, byNamespace);
}

/** The owner reference with `controller: true` (of `kind`, when given), if any. */
export function controllerOf(pod: Pod, kind?: string): OwnerReference | undefined {
  const ref = pod.metadata.ownerReferences?.find((owner) => owner.controller === true);
  return ref !== undefined && (kind === undefined || ref.kind === kind) ? ref : undefined;
}
