/**
 * Adoption and release, as Kubernetes' ControllerRefManager: a controller claims the objects its
 * selector matches. One it controls (ownerReference with controller: true and its uid) and still
 * selects is kept; one it controls and no longer selects is released (the reference removed); an
 * orphan it selects is adopted (the reference added), unless the owner or the orphan is being
 * deleted. Objects another controller controls are left alone. Writes are compare-and-swaps on the
 * cached copies, so a conflict fails the reconcile and it is retried from a fresher cache.
 */
import type { KubeObject, OwnerReference } from '../../../proto/gen/types.js';
import type { LabelSelector } from '../../api/selectors.js';
import type { ApiHandlers } from '../../api/handlers.js';
import { NotFoundError } from '../../../proto/errors.js';

export function controllerRefOf(object: KubeObject, kind?: string): OwnerReference | undefined {
  const ref = object.metadata.ownerReferences?.find((owner) => owner.controller === true);
  return ref !== undefined && (kind === undefined || ref.kind === kind) ? ref : undefined;
}

export function controllerReference(owner: KubeObject): OwnerReference {
  return {
    apiVersion: owner.apiVersion,
    kind: owner.kind,
    name: owner.metadata.name ?? '',
    uid: owner.metadata.uid ?? '',
    controller: true,
    blockOwnerDeletion: true,
  };
}

/** The candidates `owner` controls after adopting and releasing; the writes go through `handlers`. */
export async function claimObjects<T extends KubeObject>(
  handlers: ApiHandlers,
  owner: KubeObject,
  selector: LabelSelector,
  candidates: Iterable<T>,
): Promise<T[]> {
  const claimed: T[] = [];
  const ownerDeleting = Boolean(owner.metadata.deletionTimestamp);
  for (const object of candidates) {
    const controller = controllerRefOf(object);
    if (controller !== undefined) {
      if (controller.uid !== owner.metadata.uid) continue;
      if (selector.matches(object.metadata.labels)) claimed.push(object);
      else if (!ownerDeleting) {
        const ownerReferences = (object.metadata.ownerReferences ?? []).filter(
          (ref) => ref.uid !== owner.metadata.uid,
        );
        try {
          await handlers.update({ ...object, metadata: { ...object.metadata, ownerReferences } });
        } catch (err) {
          if (!(err instanceof NotFoundError)) throw err;
        }
      }
      continue;
    }
    if (ownerDeleting || object.metadata.deletionTimestamp || !selector.matches(object.metadata.labels))
      continue;
    const adopted = await handlers.update({
      ...object,
      metadata: {
        ...object.metadata,
        ownerReferences: [...(object.metadata.ownerReferences ?? []), controllerReference(owner)],
      },
    });
    claimed.push(adopted.object as T);
  }
  return claimed;
}
