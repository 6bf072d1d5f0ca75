/**
 * An image's init layer (docker's "-init" layer): a committed snapshot between the image's top
 * layer and its containers, holding the mount points every container gets (/proc, /sys, /dev,
 * the generated /etc files' bind targets). Without it, creating them copies "/" and "/etc" up
 * into every container's writable layer on every start: start latency and disk churn. It is made
 * once per image, shared by all of its containers, by the helper code that would otherwise
 * create the same entries per container (sys/helper.ts makeInitLayer), so the two cannot drift.
 */
import { OverlaySnapshotter } from '../snapshots/overlay-snapshotter.js';
import type { Snapshotter } from '../snapshots/snapshotter.js';

/**
 * The bind targets the container runtime always mounts (containers/container-runtime.ts
 * etcFiles). /etc/resolv.conf is mounted only with the host's network: an image without one must
 * not gain an empty one, so a host-network container still creates it itself.
 */
export const INIT_LAYER_FILES = ['/etc/hosts', '/etc/hostname'];

/** The init layer's snapshot key: the top layer's ChainID it sits on, plus "-init". */
export function initLayerKey(topChainId: string): string {
  return `${topChainId}-init`;
}

/**
 * Whether a snapshot prepared on a parent stores only its own changes, so an init layer costs a
 * few directory entries. With the copy snapshotter it would be a second full copy of the image
 * per image, and a copy's container root is private anyway: containers stay on the top layer.
 */
export function layersStack(snapshotter: Snapshotter): boolean {
  return snapshotter instanceof OverlaySnapshotter;
}
