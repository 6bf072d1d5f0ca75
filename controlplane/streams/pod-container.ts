/**
 * Which container of a pod a logs, exec or attach means, as kubectl decides it: the one named
 * (a container, an init container or an ephemeral one), else the one the
 * `kubectl.kubernetes.io/default-container` annotation names, else the pod's only container.
 * Anything else is an error listing the containers to choose from. Pure.
 */
import { InvalidArgumentError } from '../../proto/errors.js';
import type { Pod } from '../../proto/gen/types.js';

export const DEFAULT_CONTAINER_ANNOTATION = 'kubectl.kubernetes.io/default-container';

export interface PodContainerChoice {
  name: string;
  /** An init container (its logs end when it ends; an exec into it is refused once it did). */
  init: boolean;
}

function choices(pod: Pod): string {
  const names = (list: Array<{ name: string }> | undefined): string =>
    (list ?? []).map((c) => c.name).join(' ');
  const init = pod.spec.initContainers?.length
    ? ` or one of the init containers: [${names(pod.spec.initContainers)}]`
    : '';
  return `choose one of: [${names(pod.spec.containers)}]${init}`;
}

export function podContainer(pod: Pod, requested: string | undefined, action: string): PodContainerChoice {
  const podName = pod.metadata.name ?? '';
  const containers = pod.spec.containers ?? [];
  const init = pod.spec.initContainers ?? [];
  const ephemeral = pod.spec.ephemeralContainers ?? [];
  const find = (name: string): PodContainerChoice | undefined => {
    if (containers.some((c) => c.name === name) || ephemeral.some((c) => c.name === name))
      return { name, init: false };
    if (init.some((c) => c.name === name)) return { name, init: true };
    return undefined;
  };
  if (requested) {
    const found = find(requested);
    if (!found)
      throw new InvalidArgumentError(
        `${action}: container "${requested}" is not valid for pod "${podName}"; ${choices(pod)}`,
        'container',
      );
    return found;
  }
  const annotated = pod.metadata.annotations?.[DEFAULT_CONTAINER_ANNOTATION];
  if (annotated) {
    const found = find(annotated);
    if (found) return found;
  }
  if (containers.length === 1) return { name: containers[0]!.name, init: false };
  throw new InvalidArgumentError(
    `${action}: a container name must be specified for pod "${podName}" (-c), ${choices(pod)}`,
    'container',
  );
}
