/**
 * PodRuntime — what the node agent drives to run pods: Kubernetes' CRI in our terms, in-process.
 *
 * Vocabulary
 * - A *sandbox* is a pod's shared context: the network, IPC and UTS namespaces the pod's
 *   containers join, owned by one small process (`skiff-pause`, Kubernetes' pause container)
 *   kept as a container record of kind `sandbox`. Its id is that record's id.
 * - A *pod container* is a container created with `sandbox: <id>`: it joins the sandbox's
 *   namespaces (its network is `container:<sandbox>`, its hostname and /etc files the sandbox's).
 * - The *network hook* (SandboxNetwork) is what plugs a sandbox into the node's network; the
 *   runtime brings up only loopback. A sandbox on the *host network* (Kubernetes' hostNetwork)
 *   has no network namespace of its own: it is in the host's, and the hook is never called for it.
 * - A sandbox's *IPs* are what its hook's setUp returned (the addresses of its eth0), or for a
 *   host-network sandbox the host's addresses its creator gave; the agent reports them as the
 *   pod's `status.podIP(s)`, and the first is the pod's hostname in its /etc/hosts.
 *
 * Lifecycle of a sandbox
 *   createSandbox: record + pause process (new net, ipc, uts namespaces, `lo` up)
 *                  → network.setUp({ netnsPath: /proc/<pid>/ns/net, … }) → its IPs in /etc/hosts
 *                  → ready, the IPs recorded (setUp failed: network.tearDown, the sandbox removed,
 *                  the error thrown). On the host network: no new net namespace, no hook; ready
 *                  with the IPs given.
 *   create / start pod containers: they join its namespaces; a start is refused unless it is ready
 *   removeSandbox: its containers removed (killed if running) → network.tearDown → its process
 *                  and record removed
 *
 * Invariants
 * - No container of a sandbox starts before the sandbox's setUp returned: `ready` is recorded
 *   only then, with its IPs, and a start checks it. A sandbox's IPs never change.
 * - Labels are set at create and never change; lists and watches select by them (every label
 *   asked must be present with that value).
 * - Events are complete from a watch's list on: `watchContainers` lists the containers and starts
 *   the stream in one step, so an exit between the list and the first event is never lost.
 *   Every event carries a sequence number above the list's `revision`.
 * - `ensureImage` pulls only what the local store lacks, once however many ask at a time; without
 *   a puller a missing image is a NotFoundError naming the reference.
 */
import type { ContentIngester, ContentReader } from '../../proto/oci/content-store.js';
import type { Digest } from '../../proto/oci/digest.js';
import type { Descriptor } from '../../proto/oci/manifests.js';
import type { ContainerInfo, ContainerRuntime, ExitInfo } from './containers/container-runtime.js';
import type { ContainerKind } from './containers/state.js';
import type { RunOptions, RuntimeImage } from './runtime.js';

// ------------------------------------------------------------------ selecting containers

/** Which containers a list or a watch is about: every condition given must hold. */
export interface ContainerSelector {
  /** Labels the container must have, each with this value. */
  labels?: Record<string, string>;
  /** Only the containers of this sandbox (its id). */
  sandbox?: string;
  /** Only ordinary containers, or only sandboxes' processes. Both when absent. */
  kind?: ContainerKind;
}

export interface ListContainersOptions extends ContainerSelector {
  /** Created and exited containers too; by default only running ones (as `ps`). */
  all?: boolean;
}

// ------------------------------------------------------------------ events

export type ContainerEventType = 'created' | 'started' | 'exited' | 'removed';

export interface ContainerEvent {
  /** Increases by one per event of this runtime object; above the `revision` of the watch's list. */
  seq: number;
  type: ContainerEventType;
  /** When the runtime saw the change (ISO 8601). */
  time: string;
  /** The container as it was seen then (for `removed`, as it was last seen). */
  container: ContainerInfo;
  /**
   * `exited` only: the exit code (128+signal when killed), the signal, and the reason (OOMKilled
   * when its memory cgroup counted an OOM kill, StartError, ShimDied, Completed or Error).
   */
  exit?: ExitInfo;
}

/**
 * A watch: the containers selected as of `revision`, then every change to them as an event, in
 * order, for one consumer (`for await`). A consumer that falls more than 10,000 events behind is
 * ended with ResourceExhaustedError: watch again (the new watch lists what is current).
 */
export interface ContainerWatch extends AsyncIterable<ContainerEvent> {
  /** Every container selected (any status), as of `revision`. */
  readonly containers: ContainerInfo[];
  readonly revision: number;
  /** Ends the iteration; the runtime stops watching the disk once no watch is open. */
  close(): void;
}

export interface ContainerWatcher {
  watchContainers(selector?: ContainerSelector): Promise<ContainerWatch>;
}

// ------------------------------------------------------------------ sandboxes

/**
 * A port of the host forwarded to the pod (Kubernetes' `containers[].ports[]` entry with a
 * `hostPort`): connections to the host's `hostPort` reach the pod's `containerPort`.
 */
export interface PortMapping {
  /** 1–65535. */
  hostPort: number;
  /** 1–65535, in the pod's network namespace. */
  containerPort: number;
  protocol: 'TCP' | 'UDP';
  /** Only what is sent to this IPv4 address of the host; absent or 0.0.0.0: to any of them. */
  hostIP?: string;
}

export interface CreateSandboxOptions {
  /** Unique among containers and sandboxes; default `skiff-sandbox-<id prefix>`. */
  name?: string;
  labels?: Record<string, string>;
  /** The pod's hostname, which its containers share; default the id's first 12 characters. */
  hostname?: string;
  /**
   * Host ports the network hook forwards to the pod (recorded with the sandbox, given to the hook).
   * On the host network there is nothing to forward: each hostPort must equal its containerPort.
   */
  portMappings?: PortMapping[];
  /**
   * The pod uses the host's network (Kubernetes' hostNetwork): the sandbox gets no network
   * namespace of its own and the hook is not called; `ips` are the host's addresses, which the
   * sandbox reports as its own (at least one). The host's network is the runtime's own, or, where
   * the host is itself a namespace (PodNetwork's `hostNetns`), the one at `netnsPath`.
   */
  hostNetwork?: { ips: string[]; netnsPath?: string };
  /**
   * The text of the sandbox's /etc/resolv.conf, shared by its containers (the kubelet's, from the
   * pod's dnsPolicy); absent: the host's file on the host network, none otherwise.
   */
  resolvConf?: string;
}

/** What the network hook is told about a sandbox. */
export interface SandboxNetworkTarget {
  id: string;
  name: string;
  labels: Record<string, string>;
  hostname: string;
  /** As given to createSandbox (validated); empty when none. */
  portMappings: PortMapping[];
  /**
   * The sandbox's network namespace (`/proc/<pid>/ns/net`, open it or `nsenter --net=` it); absent
   * on tear-down when the sandbox's process is gone, and the namespace with it.
   */
  netnsPath?: string;
}

/** What a set-up gave the sandbox. */
export interface SandboxNetworkStatus {
  /** The sandbox's addresses, the primary first (what the agent reports as the pod's IPs). */
  ips: string[];
}

/**
 * Plugs sandboxes into the node's network (veths, addresses, routes, host ports; net/pod-network.ts
 * is the node agent's). Both calls must be idempotent, and tearDown must succeed for a sandbox
 * whose setUp never ran, failed or did not finish (as CNI's DEL). Never called for a sandbox on
 * the host network.
 */
export interface SandboxNetwork {
  /** Called once the sandbox's namespaces exist and before any of its containers starts. */
  setUp(sandbox: SandboxNetworkTarget & { netnsPath: string }): Promise<SandboxNetworkStatus>;
  /** Called when a sandbox is removed (while its namespace lives, if it does), and after a failed setUp. */
  tearDown(sandbox: SandboxNetworkTarget): Promise<void>;
}

/** ready: its process runs and its network hook returned; notready otherwise (remove it). */
export type SandboxState = 'ready' | 'notready';

export interface SandboxInfo {
  id: string;
  name: string;
  labels: Record<string, string>;
  hostname: string;
  /** ISO 8601. */
  created: string;
  state: SandboxState;
  /** While its process runs: that process (host pid) and its network namespace. */
  pid?: number;
  netnsPath?: string;
  /** Its addresses once ready, the primary first (see the vocabulary above); empty before. */
  ips: string[];
  /** It is on the host's network (no namespace of its own). */
  hostNetwork: boolean;
  /** As given to createSandbox. */
  portMappings: PortMapping[];
}

export interface SandboxService {
  createSandbox(opts?: CreateSandboxOptions): Promise<SandboxInfo>;
  /** By id, unique id prefix or name. NotFoundError, or InvalidArgumentError for an ordinary container. */
  inspectSandbox(ref: string): Promise<SandboxInfo>;
  listSandboxes(selector?: Pick<ContainerSelector, 'labels'>): Promise<SandboxInfo[]>;
  /** Removes its containers (killing running ones), tears its network down, removes it. */
  removeSandbox(ref: string): Promise<void>;
}

// ------------------------------------------------------------------ images

/** Where a puller puts what it fetched: the runtime's content store and image names. */
export interface PullTarget {
  /** Blobs are ingested here (each verified against its digest), after `hold`ing their digest. */
  content: ContentIngester & ContentReader;
  /** Keeps a blob from garbage collection until the pull ends; call before looking for or writing it. */
  hold(digest: Digest): Promise<void>;
  /** Names a manifest whose blobs are all in `content`; the last step of a pull. */
  tag(name: string, manifest: Descriptor): Promise<void>;
}

/** Fetches an image into the local store (proto/oci/registry-client.ts is one). */
export interface ImagePuller {
  /** Resolves once `ref` names an image in `into`; rejects with why it could not. */
  pull(ref: string, into: PullTarget): Promise<void>;
}

// ------------------------------------------------------------------ the whole

export interface PodRuntime {
  /** Container lifecycle (start, stop, kill, exec, logs, remove…), lists by label, sandboxes, events. */
  readonly containers: ContainerRuntime & SandboxService & ContainerWatcher;
  /** The local image for `ref`, pulled through the puller when the local store lacks it. */
  ensureImage(ref: string, policy?: 'Always' | 'IfNotPresent' | 'Never'): Promise<RuntimeImage>;
  /**
   * Creates, without starting, a container from an image (ensured as above) or a directory;
   * `sandbox` puts it in a sandbox. The caller starts it with `containers.start`.
   */
  create(opts: RunOptions): Promise<ContainerInfo>;
}
