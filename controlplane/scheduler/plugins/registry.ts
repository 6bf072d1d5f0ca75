/**
 * The plugins the scheduler knows, by name, and Kubernetes' default profile: which filter in which
 * order (cheap and unresolvable checks first, as kube-scheduler orders them; a node is refused by
 * the first filter that refuses it, whose reason the FailedScheduling message counts) and which
 * score with which weight.
 */
import type { Plugin } from '../framework/types.js';
import { ImageLocality, IMAGE_LOCALITY } from './image-locality.js';
import { InterPodAffinity, INTER_POD_AFFINITY } from './inter-pod-affinity.js';
import { NodeAffinity, NODE_AFFINITY } from './node-affinity.js';
import { NodeName, NODE_NAME } from './node-name.js';
import { NodePorts, NODE_PORTS } from './node-ports.js';
import { NodeReady, NODE_READY } from './node-ready.js';
import {
  NodeResourcesBalancedAllocation,
  NODE_RESOURCES_BALANCED_ALLOCATION,
} from './node-resources-balanced-allocation.js';
import { NodeResourcesFit, NODE_RESOURCES_FIT } from './node-resources-fit.js';
import { NodeUnschedulable, NODE_UNSCHEDULABLE } from './node-unschedulable.js';
import { PodTopologySpread, POD_TOPOLOGY_SPREAD } from './pod-topology-spread.js';
import { TaintToleration, TAINT_TOLERATION } from './taint-toleration.js';

/** The PostFilter plugin: preemption (controlplane/scheduler/preemption.ts). */
export const DEFAULT_PREEMPTION = 'DefaultPreemption';

/** Filter plugins in the order they run by default. */
export const DEFAULT_FILTERS: readonly string[] = [
  NODE_UNSCHEDULABLE,
  NODE_READY,
  NODE_NAME,
  TAINT_TOLERATION,
  NODE_AFFINITY,
  NODE_PORTS,
  NODE_RESOURCES_FIT,
  POD_TOPOLOGY_SPREAD,
  INTER_POD_AFFINITY,
];

/** Score plugins and their weights by default (Kubernetes' default profile). */
export const DEFAULT_SCORES: readonly { name: string; weight: number }[] = [
  { name: TAINT_TOLERATION, weight: 3 },
  { name: NODE_AFFINITY, weight: 2 },
  { name: NODE_RESOURCES_FIT, weight: 1 },
  { name: POD_TOPOLOGY_SPREAD, weight: 2 },
  { name: INTER_POD_AFFINITY, weight: 2 },
  { name: NODE_RESOURCES_BALANCED_ALLOCATION, weight: 1 },
  { name: IMAGE_LOCALITY, weight: 1 },
];

export const DEFAULT_POST_FILTERS: readonly string[] = [DEFAULT_PREEMPTION];

const FACTORIES: Record<string, () => Plugin> = {
  [NODE_UNSCHEDULABLE]: () => new NodeUnschedulable(),
  [NODE_READY]: () => new NodeReady(),
  [NODE_NAME]: () => new NodeName(),
  [TAINT_TOLERATION]: () => new TaintToleration(),
  [NODE_AFFINITY]: () => new NodeAffinity(),
  [NODE_PORTS]: () => new NodePorts(),
  [NODE_RESOURCES_FIT]: () => new NodeResourcesFit(),
  [NODE_RESOURCES_BALANCED_ALLOCATION]: () => new NodeResourcesBalancedAllocation(),
  [POD_TOPOLOGY_SPREAD]: () => new PodTopologySpread(),
  [INTER_POD_AFFINITY]: () => new InterPodAffinity(),
  [IMAGE_LOCALITY]: () => new ImageLocality(),
};

/** Names of the filter plugins the scheduler knows. */
export const FILTER_PLUGINS: readonly string[] = DEFAULT_FILTERS;
/** Names of the score plugins the scheduler knows. */
export const SCORE_PLUGINS: readonly string[] = DEFAULT_SCORES.map((score) => score.name);
export const POST_FILTER_PLUGINS: readonly string[] = DEFAULT_POST_FILTERS;

/** One instance of each named plugin (a plugin that filters and scores is one object for both). */
export function instantiatePlugins(names: Iterable<string>): Map<string, Plugin> {
  const plugins = new Map<string, Plugin>();
  for (const name of names) {
    const factory = FACTORIES[name];
    if (factory !== undefined && !plugins.has(name)) plugins.set(name, factory());
  }
  return plugins;
}
