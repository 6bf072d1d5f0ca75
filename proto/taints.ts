/**
 * Taints and tolerations, as Kubernetes matches them (core/v1 Toleration.ToleratesTaint): a
 * toleration with an effect tolerates only that effect; with a key, only that key; operator Exists
 * tolerates any value, Equal (the default) only its own. An empty key with Exists tolerates every
 * taint.
 */
import type { Taint, Toleration } from './gen/types.js';

export const TAINT_NODE_NOT_READY = 'node.kubernetes.io/not-ready';
export const TAINT_NODE_UNREACHABLE = 'node.kubernetes.io/unreachable';
export const TAINT_NODE_UNSCHEDULABLE = 'node.kubernetes.io/unschedulable';

export function toleratesTaint(toleration: Toleration, taint: Taint): boolean {
  if (toleration.effect && toleration.effect !== taint.effect) return false;
  if (toleration.key && toleration.key !== taint.key) return false;
  switch (toleration.operator ?? 'Equal') {
    case 'Exists':
      return true;
    case 'Equal':
    case '':
      return (toleration.value ?? '') === (taint.value ?? '');
    default:
      return false;
  }
}

export function tolerationsTolerate(tolerations: readonly Toleration[] | undefined, taint: Taint): boolean {
  if (tolerations === undefined) return false;
  for (const toleration of tolerations) if (toleratesTaint(toleration, taint)) return true;
  return false;
}

/** Whether a taint keeps pods off (NoSchedule, NoExecute); PreferNoSchedule only scores. */
export function isHardTaint(taint: Taint): boolean {
  return taint.effect === 'NoSchedule' || taint.effect === 'NoExecute';
}

/** The first NoSchedule or NoExecute taint, in the node's order, that the tolerations do not tolerate. */
export function firstUntoleratedHardTaint(
  taints: readonly Taint[] | undefined,
  tolerations: readonly Toleration[] | undefined,
): Taint | undefined {
  if (taints === undefined) return undefined;
  for (const taint of taints) {
    if (isHardTaint(taint) && !tolerationsTolerate(tolerations, taint)) return taint;
  }
  return undefined;
}

/** Kubernetes' words for a taint in a refusal: `{key: value}`, the value empty when there is none. */
export function untoleratedTaintReason(taint: Taint): string {
  return `node(s) had untolerated taint {${taint.key}: ${taint.value ?? ''}}`;
}

/**
 * The tolerations with Kubernetes' DefaultTolerationSeconds added: a pod that says nothing about
 * its node being not Ready or unreachable (no NoExecute toleration of that key) tolerates each for
 * the seconds given, then is evicted and replaced elsewhere. The same array when nothing is added.
 */
export function withDefaultTolerations(
  tolerations: Toleration[] | undefined,
  seconds: { notReady: number; unreachable: number },
): Toleration[] | undefined {
  const says = (key: string) =>
    (tolerations ?? []).some(
      (t) =>
        (t.effect === 'NoExecute' || !t.effect) && (t.key === key || (!t.key && t.operator === 'Exists')),
    );
  const added = [
    { key: TAINT_NODE_NOT_READY, tolerationSeconds: seconds.notReady },
    { key: TAINT_NODE_UNREACHABLE, tolerationSeconds: seconds.unreachable },
  ]
    .filter(({ key }) => !says(key))
    .map(({ key, tolerationSeconds }) => ({
      key,
      operator: 'Exists',
      effect: 'NoExecute',
      tolerationSeconds,
    }));
  return added.length === 0 ? tolerations : [...(tolerations ?? []), ...added];
}
