/**
 * An image's init layer (docker's "-init" layer): a committed snapshot between the image's top
 * layer and its containers, holding the mount points every container gets (/proc, /sys, /dev,
 * the generated /etc files' bind targets). Without it, creating them copies "/" and "/etc" up
 * into every container's writable layer on every start: start latency and disk churn. It is made
 * once per image, shared by all of its containers, by the helper code that would otherwise
 * create the same entries per container (sys/helper.ts makeInitLayer), so the two cannot drift.
 */
import { ETC_FILES_ALWAYS_MOUNTED } from '../containers/defaults.js';

/**
 * The bind targets the container runtime always mounts. /etc/resolv.conf is mounted only with the
 * host's network or a sandbox's own (every pod's): an image without one must not gain an empty
 * one outside a pod, so those containers still create it themselves.
 */
export const INIT_LAYER_FILES = ETC_FILES_ALWAYS_MOUNTED.map((name) => `/etc/${name}`);

/** The init layer's snapshot key: the top layer's ChainID it sits on, plus "-init". */
export function initLayerKey(topChainId: string): string {
  return `${topChainId}-init`;
}
