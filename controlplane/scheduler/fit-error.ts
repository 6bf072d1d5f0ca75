/**
 * The FailedScheduling message, worded as kube-scheduler's FitError:
 *
 *   0/3 nodes are available: 1 node(s) had untolerated taint {dedicated: gpu}, 2 Insufficient memory.
 *   preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling.
 *
 * Each reason of each refused node is counted; "<count> <reason>" texts are sorted as strings (Go's
 * sort.Strings: "10 …" before "2 …", as Kubernetes prints them) and joined with ", ". A refusal at
 * PreFilter (the same for every node) is told once instead. What the PostFilter (preemption) said
 * follows. Kubernetes ends a message that already ends with a period with a second one
 * ("scheduling.."); skiff does not.
 */
import type { Status } from './framework/types.js';

export const NO_NODES_AVAILABLE = 'no nodes available to schedule pods';

export interface Diagnosis {
  /** Every node the snapshot had. */
  readonly numAllNodes: number;
  /** Why each refused node was refused. */
  readonly nodeStatuses: ReadonlyMap<string, Status>;
  /** A PreFilter's refusal (then it stands for every node). */
  readonly preFilterMessage?: string;
  /** What preemption said. */
  readonly postFilterMessage?: string;
}

function sentence(text: string): string {
  return text.endsWith('.') ? ` ${text}` : ` ${text}.`;
}

/** "<count> <reason>" per reason, sorted as Kubernetes sorts them. */
export function reasonHistogram(statuses: Iterable<Status>): string[] {
  const counts = new Map<string, number>();
  for (const status of statuses) {
    for (const reason of status.reasons) counts.set(reason, (counts.get(reason) ?? 0) + 1);
  }
  // Byte order, as Go's sort.Strings (not localeCompare).
  return [...counts]
    .map(([reason, count]) => `${count} ${reason}`)
    .sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
}

export function fitErrorMessage(diagnosis: Diagnosis): string {
  let message = `0/${diagnosis.numAllNodes} nodes are available:`;
  if (diagnosis.preFilterMessage !== undefined && diagnosis.preFilterMessage !== '') {
    message += sentence(diagnosis.preFilterMessage);
  } else {
    const histogram = reasonHistogram(diagnosis.nodeStatuses.values());
    if (histogram.length > 0) message += sentence(histogram.join(', '));
  }
  if (diagnosis.postFilterMessage !== undefined && diagnosis.postFilterMessage !== '') {
    message += sentence(diagnosis.postFilterMessage);
  }
  return message;
}
