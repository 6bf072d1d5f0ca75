/**
 * Nodes and pods for suites that run the scheduler against a real control plane without agents:
 * a Node registered through the API as an agent registers it (created, then its status: Ready,
 * capacity, allocatable), and a pod as a user would send it. Both are the scheduler's builders
 * (controlplane/scheduler/testing.ts) made fit for the API.
 *
 *   await registerNode(api, makeNode('n1', { cpu: '2', memory: '4Gi', zone: 'a' }));
 *   await api.create(userPod(makePod('web', { cpu: '100m' })));
 */
import type { Node, Pod } from '../../proto/gen/types.js';

/** What registerNode needs of the API: an ApiClient, or the control plane's ApiHandlers adapted. */
export interface NodeRegistrar {
  create(node: Node): Promise<unknown>;
  updateStatus(node: Node): Promise<unknown>;
}

/** Creates the node (the API drops status on create), then writes its status. */
export async function registerNode(api: NodeRegistrar, node: Node): Promise<void> {
  await api.create({ ...node, status: {} } as Node);
  await api.updateStatus(node);
}

/**
 * The pod as a user writes it: no uid (the API makes one), no priority (admission computes it from
 * priorityClassName), the default schedulerName left to the API.
 */
export function userPod(
  pod: Pod,
  extra: { priorityClassName?: string; terminationGracePeriodSeconds?: number } = {},
): Pod {
  const { uid: _uid, ...metadata } = pod.metadata;
  const { priority: _priority, schedulerName: _schedulerName, ...spec } = pod.spec;
  return { ...pod, metadata, spec: { ...spec, ...extra } };
}
