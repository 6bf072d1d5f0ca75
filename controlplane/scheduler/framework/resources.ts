/**
 * Resources as the scheduler counts them: plain integers, parsed once from quantities — cpu in
 * millicores, memory and ephemeral storage in bytes, pods as a count, every other resource
 * (extended resources such as `example.com/gpu`, hugepages) in whole units by name.
 *
 * A pod's requests follow Kubernetes (`resource.PodRequests`): the regular containers' sum; init
 * containers run one after another, so each counts alone, with the sidecars (init containers of
 * restartPolicy Always) started before it; the larger of the two; then the pod's overhead. Pod-level
 * requests (spec.resources), when set, stand for the containers' cpu and memory.
 */
import type { Node, PodSpec } from '../../../proto/gen/types.js';
import { milliValue, wholeValue } from '../../../proto/quantity.js';

export const CPU = 'cpu';
export const MEMORY = 'memory';
export const EPHEMERAL_STORAGE = 'ephemeral-storage';
export const PODS = 'pods';

/**
 * What a container asks for when it names no cpu or memory request, for scoring only (Kubernetes'
 * DefaultMilliCPURequest and DefaultMemoryRequest): so that best-effort pods still spread.
 */
export const DEFAULT_MILLI_CPU_REQUEST = 100;
export const DEFAULT_MEMORY_REQUEST = 200 * 1024 * 1024;

export interface Resources {
  milliCpu: number;
  memory: number;
  ephemeralStorage: number;
  /** Allocatable: how many pods the node takes. Unused in requests (every pod counts one). */
  pods: number;
  /** Every other resource by name, in whole units; undefined while there is none. */
  scalar: Map<string, number> | undefined;
}

export function emptyResources(): Resources {
  return { milliCpu: 0, memory: 0, ephemeralStorage: 0, pods: 0, scalar: undefined };
}

export function copyResources(from: Resources): Resources {
  return { ...from, scalar: from.scalar === undefined ? undefined : new Map(from.scalar) };
}

function parseInto(target: Resources, name: string, quantity: string, sign: 1 | -1 = 1): void {
  switch (name) {
    case CPU:
      target.milliCpu += sign * milliValue(quantity);
      return;
    case MEMORY:
      target.memory += sign * wholeValue(quantity);
      return;
    case EPHEMERAL_STORAGE:
      target.ephemeralStorage += sign * wholeValue(quantity);
      return;
    case PODS:
      target.pods += sign * wholeValue(quantity);
      return;
    default: {
      const value = wholeValue(quantity);
      if (value === 0) return;
      target.scalar ??= new Map();
      target.scalar.set(name, (target.scalar.get(name) ?? 0) + sign * value);
    }
  }
}

/** A resource list ({cpu: "500m", memory: "1Gi"}) as integers. */
export function parseResourceList(list: Record<string, string> | undefined): Resources {
  const result = emptyResources();
  if (list === undefined) return result;
  for (const name in list) parseInto(result, name, list[name]!);
  return result;
}

/** What the scheduler may place on a node: status.allocatable (nothing when it is not reported). */
export function nodeAllocatable(node: Node): Resources {
  return parseResourceList(node.status?.allocatable);
}

export function addResources(target: Resources, other: Resources, sign: 1 | -1 = 1): void {
  target.milliCpu += sign * other.milliCpu;
  target.memory += sign * other.memory;
  target.ephemeralStorage += sign * other.ephemeralStorage;
  target.pods += sign * other.pods;
  if (other.scalar !== undefined) {
    target.scalar ??= new Map();
    for (const [name, value] of other.scalar) {
      const next = (target.scalar.get(name) ?? 0) + sign * value;
      if (next === 0) target.scalar.delete(name);
      else target.scalar.set(name, next);
    }
  }
}

function maxInto(target: Resources, other: Resources): void {
  target.milliCpu = Math.max(target.milliCpu, other.milliCpu);
  target.memory = Math.max(target.memory, other.memory);
  target.ephemeralStorage = Math.max(target.ephemeralStorage, other.ephemeralStorage);
  if (other.scalar !== undefined) {
    target.scalar ??= new Map();
    for (const [name, value] of other.scalar) {
      target.scalar.set(name, Math.max(target.scalar.get(name) ?? 0, value));
    }
  }
}

/** Requests of one container; with `defaults`, a missing cpu or memory request reads as the default. */
function containerRequests(requests: Record<string, string> | undefined, defaults: boolean): Resources {
  const result = parseResourceList(requests);
  if (defaults) {
    if (requests?.[CPU] === undefined) result.milliCpu = DEFAULT_MILLI_CPU_REQUEST;
    if (requests?.[MEMORY] === undefined) result.memory = DEFAULT_MEMORY_REQUEST;
  }
  return result;
}

/**
 * The pod's requests. With `nonZeroDefaults` (scoring), a container that names no cpu or memory
 * request counts the Kubernetes defaults instead of zero.
 */
export function podRequests(spec: PodSpec, nonZeroDefaults = false): Resources {
  const total = emptyResources();
  for (const container of spec.containers ?? []) {
    addResources(total, containerRequests(container.resources?.requests, nonZeroDefaults));
  }
  const sidecars = emptyResources();
  const initPeak = emptyResources();
  for (const container of spec.initContainers ?? []) {
    const requests = containerRequests(container.resources?.requests, nonZeroDefaults);
    if (container.restartPolicy === 'Always') {
      // A sidecar keeps running beside the containers started after it.
      addResources(total, requests);
      addResources(sidecars, requests);
      maxInto(initPeak, sidecars);
    } else {
      const whileRunning = copyResources(requests);
      addResources(whileRunning, sidecars);
      maxInto(initPeak, whileRunning);
    }
  }
  maxInto(total, initPeak);
  const podLevel = spec.resources?.requests;
  if (podLevel !== undefined) {
    if (podLevel[CPU] !== undefined) total.milliCpu = milliValue(podLevel[CPU]);
    if (podLevel[MEMORY] !== undefined) total.memory = wholeValue(podLevel[MEMORY]);
  }
  if (spec.overhead !== undefined) addResources(total, parseResourceList(spec.overhead));
  total.pods = 0;
  return total;
}
