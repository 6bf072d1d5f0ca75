/**
 * ImageLocality: favours nodes that already hold the pod's images, as Kubernetes scores it: per
 * container image on the node, its size scaled by the share of all nodes that hold it (so one
 * image does not pull every pod to the few nodes that have it), summed, then mapped from
 * [23 MiB, 1000 MiB · containers] onto 0..100.
 *
 * skiff extension: nodes report the layers they hold (ContainerImage.layers). A node without the
 * image by name but with some of its layers (the image's layers known from a node that reports it)
 * is credited with that share of the image's size, scaled the same way — a node holding `app:2`'s
 * base layers starts it nearly as fast as one holding `app:2`.
 */
import type { NodeInfo } from '../framework/node-info.js';
import type { PodInfo } from '../framework/pod-info.js';
import type { KnownImage, Snapshot } from '../framework/snapshot.js';
import {
  MAX_NODE_SCORE,
  type ClusterEvent,
  type CycleState,
  type ScorePlugin,
  type StateData,
} from '../framework/types.js';

export const IMAGE_LOCALITY = 'ImageLocality';

const MIB = 1024 * 1024;
const MIN_THRESHOLD = 23 * MIB;
const MAX_CONTAINER_THRESHOLD = 1000 * MIB;

const PRE_SCORE_KEY = `PreScore${IMAGE_LOCALITY}`;

interface ImageFacts {
  readonly name: string;
  /** The share of all nodes holding it by name. */
  readonly spread: number;
  readonly known: KnownImage | undefined;
}

class PreScoreState implements StateData {
  constructor(
    readonly images: readonly ImageFacts[],
    readonly containers: number,
  ) {}
  clone(): StateData {
    return this;
  }
}

/** Kubernetes' calculatePriority: the summed image score mapped onto 0..100. */
export function imageScoreToNodeScore(sum: number, containers: number): number {
  const maxThreshold = MAX_CONTAINER_THRESHOLD * containers;
  const clamped = Math.min(Math.max(sum, MIN_THRESHOLD), maxThreshold);
  return Math.trunc((MAX_NODE_SCORE * (clamped - MIN_THRESHOLD)) / (maxThreshold - MIN_THRESHOLD));
}

export class ImageLocality implements ScorePlugin {
  readonly name = IMAGE_LOCALITY;

  events(): readonly ClusterEvent[] {
    return [];
  }

  preScore(
    state: CycleState,
    pod: PodInfo,
    _nodes: readonly NodeInfo[],
    snapshot: Snapshot,
  ): 'skip' | undefined {
    const total = snapshot.nodeCount;
    if (total === 0) return 'skip';
    const images: ImageFacts[] = [];
    for (const name of pod.images) {
      const holders = snapshot.imageNodeCount(name);
      if (holders > 0) images.push({ name, spread: holders / total, known: snapshot.knownImage(name) });
    }
    // No node holds any of the images: every node would score 0.
    if (images.length === 0) return 'skip';
    state.write(PRE_SCORE_KEY, new PreScoreState(images, pod.images.length));
    return undefined;
  }

  score(state: CycleState, _pod: PodInfo, node: NodeInfo): number {
    const facts = state.read<PreScoreState>(PRE_SCORE_KEY);
    if (facts === undefined) return 0;
    let sum = 0;
    for (const image of facts.images) {
      const size = node.images.get(image.name);
      if (size !== undefined) {
        sum += Math.trunc(size * image.spread);
        continue;
      }
      const layers = image.known?.layers;
      if (layers === undefined || layers.length === 0 || node.layers.size === 0) continue;
      let held = 0;
      for (const layer of layers) if (node.layers.has(layer)) held++;
      sum += Math.trunc(image.known!.size * (held / layers.length) * image.spread);
    }
    return imageScoreToNodeScore(sum, facts.containers);
  }
}
