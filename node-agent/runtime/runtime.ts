/**
 * The runtime's façade: images (the image store), snapshots, and containers tied together, and
 * the one module of the runtime that code outside it (the CLI, the agent) imports.
 * `create` = ensure the image (pulled when missing, pod-runtime.ts) → unpack it (committed
 * snapshots per layer, and the image's init layer where layers stack) → prepare a writable
 * snapshot on the init layer (else the top chain ID) → create a container on the snapshot's
 * mounts, with entrypoint/cmd/env/workdir/user taken from the image config and overridden by the
 * caller. `run` = create + start. Runtime is the PodRuntime the node agent drives.
 *
 *   <root>/content, <root>/images, <root>/snapshots   the image side (images/)
 *   <root>/containers/<id>/                           the container side (containers/)
 *   <root>/sandboxes/                                 the root sandboxes' processes run in
 *   (the agent's choice, e.g. <root>/net)              the pod network's leases (net/, PodNetwork)
 */
import { constants as osConstants } from 'node:os';
import { randomBytes } from 'node:crypto';
import { InvalidArgumentError, FailedPreconditionError } from '../../proto/errors.js';
import type { Logger } from '../../proto/support/logger.js';
import type { LocalContentStore } from '../../proto/oci/local-content-store.js';
import type { RegistryClient, RegistryClientOptions } from '../../proto/oci/registry-client.js';
import {
  LinuxContainerRuntime,
  type ContainerInfo,
  type CreateContainerOptions,
  type ExecOptions,
  type SnapshotRemover,
} from './containers/container-runtime.js';
import type { ContainerEventHubOptions } from './containers/container-events.js';
import type { ImageStore, ResolvedImage } from './images/image-store.js';
import { ImagePulls, type PullPolicy } from './images/image-pull.js';
import type { ImagePuller, PodRuntime, SandboxNetwork } from './pod-runtime.js';
import { openSnapshotter, type SnapshotterChoice } from './snapshots/open-snapshotter.js';
import { probeOverlay } from './sys/overlay-probe.js';
import { parseUser } from './containers/validate.js';
import type { RootMount } from './sys/helper-spec.js';
import { relayExec, type ExecStreams } from './sys/helper.js';
import type { BuildOptions, BuildResult } from './build/image-builder.js';
import { DEFAULT_ROOT, openImageSide } from './image-side.js';

// What the CLI needs of the runtime beyond the façade's objects: the runtime's own syntax of
// docker's flags, and the types it prints.
export { signalNumber, type ContainerInfo, type ContainerInput } from './containers/container-runtime.js';
export {
  parseBytes,
  parseLabels,
  parseNetwork,
  parseSecurityOpts,
  parseVolume,
} from './containers/validate.js';
export type { SnapshotterChoice } from './snapshots/open-snapshotter.js';
export {
  CAPABILITY_NAMES,
  capabilityName,
  capabilityNumber,
  resolveCapabilities,
} from './containers/capabilities.js';

export { DEFAULT_ROOT, openImageSide, type ImageSide } from './image-side.js';
export { DEFAULT_CGROUP_PARENT, validateCgroupParent } from './sys/cgroups.js';

// Connections into the pod network from a namespace that may not be this process's (probes).
export { DialError, ExchangeError, NetnsDialer, directDialer, hostPort, type Dialer } from './sys/dialer.js';

// The node agent's network hook (given to openImageRuntime as sandboxNetwork).
export { PodNetwork, type PodNetworkOptions } from './net/pod-network.js';
export type { Lease as PodNetworkLease } from './net/ipam.js';

/** The part of a resolved image the container side needs (images/image-store.ts ResolvedImage). */
export interface RuntimeImage {
  /** The image ID (config digest). */
  id: string;
  manifestDigest: string;
  /** The OCI image config; `config` is its runtime part (Env, Cmd, Entrypoint, WorkingDir, User). */
  config: { config: Record<string, unknown> };
}

/** What the image side offers the runtime (images/image-pull.ts and image-store.ts give it). */
export interface ImageService {
  /** The local image for `ref`, pulled when missing (NotFoundError without a puller). */
  ensure(ref: string, policy?: PullPolicy): Promise<RuntimeImage>;
  /**
   * Ensures a committed snapshot per layer and, where layers stack, the image's init layer (the
   * mount points every container gets, made once: images/init-layer.ts). Returns the top layer's
   * chain ID and the snapshot containers are prepared on (the init layer, else the top layer).
   */
  unpack(image: RuntimeImage): Promise<{ chainId: string; containerParent: string }>;
}

/** What the snapshotter offers the runtime (node-agent/runtime/snapshots). */
export interface ContainerSnapshots extends SnapshotRemover {
  readonly name: string;
  prepare(key: string, parent?: string): Promise<RootMount[]>;
}

/** The runtime part of an OCI image config (`config.config`, or the object itself). */
export function runtimeConfigOf(config: Record<string, unknown>): Record<string, unknown> {
  const inner = config.config;
  return inner && typeof inner === 'object' && !Array.isArray(inner)
    ? (inner as Record<string, unknown>)
    : config;
}

function stringList(value: unknown, field: string): string[] | undefined {
  if (value === undefined || value === null) return undefined;
  if (!Array.isArray(value) || value.some((v) => typeof v !== 'string')) {
    throw new InvalidArgumentError(`read image config: ${field} must be a list of strings`, field);
  }
  return value as string[];
}

export interface ProcessOverrides {
  /**
   * Replaces the image's Entrypoint and drops its Cmd (docker's --entrypoint; Kubernetes'
   * `command`): `command` then gives the arguments, if any.
   */
  entrypoint?: string[];
  /** Arguments after the image name: replace Cmd (Entrypoint stays). */
  command?: string[];
  env?: string[];
  workdir?: string;
  /** NAME|UID[:GROUP|GID], replacing the image's User. */
  user?: string;
}

/** The image's STOPSIGNAL as a signal name (`SIGQUIT`, `QUIT`, `3`); undefined when absent or unknown. */
export function stopSignalOf(value: unknown): string | undefined {
  if (typeof value !== 'string' || value === '') return undefined;
  const upper = value.toUpperCase();
  const name = /^\d+$/.test(upper)
    ? Object.entries(osConstants.signals).find(([, n]) => n === Number(upper))?.[0]
    : upper.startsWith('SIG')
      ? upper
      : `SIG${upper}`;
  return name !== undefined && name in osConstants.signals ? name : undefined;
}

/** The process a container runs: the image's defaults with the caller's overrides. Pure. */
export function processFromImage(
  imageConfig: Record<string, unknown>,
  overrides: ProcessOverrides,
): { argv: string[]; env: string[]; cwd: string; user: string } {
  const c = runtimeConfigOf(imageConfig);
  const entrypoint = overrides.entrypoint ?? stringList(c.Entrypoint, 'config.Entrypoint') ?? [];
  const cmd =
    overrides.command && overrides.command.length > 0
      ? overrides.command
      : overrides.entrypoint !== undefined
        ? []
        : (stringList(c.Cmd, 'config.Cmd') ?? []);
  const env = [...(stringList(c.Env, 'config.Env') ?? [])];
  for (const e of overrides.env ?? []) {
    const key = e.includes('=') ? e.slice(0, e.indexOf('=') + 1) : `${e}=`;
    const at = env.findIndex((x) => x.startsWith(key));
    if (at >= 0) env[at] = e;
    else env.push(e);
  }
  const workdir =
    overrides.workdir ?? (typeof c.WorkingDir === 'string' && c.WorkingDir ? c.WorkingDir : '/');
  // checked here so that a bad image User is named as such; names are resolved in the container
  if (c.User !== undefined && c.User !== null && typeof c.User !== 'string')
    throw new InvalidArgumentError('read image config: config.User must be a string', 'config.User');
  const user = overrides.user ?? (c.User as string | null | undefined) ?? '';
  parseUser(user, overrides.user !== undefined ? 'user' : 'config.User');
  return { argv: [...entrypoint, ...cmd], env, cwd: workdir, user };
}

export type RunOptions = Omit<
  CreateContainerOptions,
  'rootfs' | 'snapshotKey' | 'argv' | 'env' | 'cwd' | 'user' | 'image'
> &
  ProcessOverrides & {
    /** An image reference, resolved through the image store. */
    image?: string;
    /** Or a directory to run from (bind-mounted root), without an image. */
    rootfsDir?: string;
    /** Remove the container when it fails to start (a foreground `run --rm` removes it itself after exit). */
    removeIfStartFails?: boolean;
  };

/** An exec whose stdio the runtime relays (Runtime.execRelayed). */
export interface RelayedExec {
  /** Passes a signal on to the exec'd process. */
  signal(signal: NodeJS.Signals): void;
  /** With a terminal: its new size. */
  resize(rows: number, cols: number): void;
  /** Its exit code (128+signal when killed), once it exited and its output was relayed. */
  exitCode: Promise<number>;
}

/** How the runtime is opened: where, and the pieces an agent plugs in. */
export interface RuntimeOptions {
  root?: string;
  images?: ImageService;
  snapshots?: ContainerSnapshots;
  /** See LinuxContainerRuntime.open: parked shims for a long-lived process (the agent). */
  warmShims?: number;
  /** Plugs sandboxes into the node's network (pod-runtime.ts SandboxNetwork). */
  sandboxNetwork?: SandboxNetwork;
  /** The cgroup parent of new containers (LinuxContainerRuntime.open); default `skiff`. */
  cgroupParent?: string;
  /** How watchContainers notices changes (containers/container-events.ts). */
  events?: ContainerEventHubOptions;
}

export class Runtime implements PodRuntime {
  constructor(
    readonly containers: LinuxContainerRuntime,
    readonly images?: ImageService,
    readonly snapshots?: ContainerSnapshots,
  ) {}

  static async open(opts: RuntimeOptions): Promise<Runtime> {
    const root = opts.root ?? DEFAULT_ROOT;
    const given = opts.snapshots;
    // a container's snapshot is removed through the snapshotter that made it, opened by name
    const containers = await LinuxContainerRuntime.open({
      root,
      snapshots: async (name) => {
        if (given && given.name === name) return given;
        return openSnapshotter(root, { choice: name as SnapshotterChoice, probe: probeOverlay });
      },
      warmShims: opts.warmShims,
      sandboxNetwork: opts.sandboxNetwork,
      events: opts.events,
      ...(opts.cgroupParent !== undefined ? { cgroupParent: opts.cgroupParent } : {}),
    });
    return new Runtime(containers, opts.images, given);
  }

  async ensureImage(ref: string, policy?: PullPolicy): Promise<RuntimeImage> {
    return this.imageSide(`ensure image ${ref}`).images.ensure(ref, policy);
  }

  private imageSide(action: string): { images: ImageService; snapshots: ContainerSnapshots } {
    if (!this.images || !this.snapshots) {
      throw new FailedPreconditionError(
        `${action}: this runtime has no image store; run from a directory instead`,
      );
    }
    return { images: this.images, snapshots: this.snapshots };
  }

  /** Creates a container from an image and starts it; see `create` and `run`. */
  async run(opts: RunOptions): Promise<ContainerInfo> {
    const created = await this.create(opts);
    try {
      return await this.containers.start(created.id);
    } catch (err) {
      // a failed start leaves the record for inspection, unless the caller asked for --rm
      if (opts.autoRemove || opts.removeIfStartFails) {
        await this.containers.remove(created.id, { force: true }).catch(() => {});
      }
      throw err;
    }
  }

  /** Creates a container from an image (or a directory) without starting it. */
  async create(opts: RunOptions): Promise<ContainerInfo> {
    const {
      image: ref,
      rootfsDir,
      entrypoint,
      command,
      workdir,
      user,
      env,
      removeIfStartFails: _removeIfStartFails,
      ...rest
    } = opts;
    let rootfs: RootMount;
    let snapshotKey: string | undefined;
    let imageConfig: Record<string, unknown> = {};
    let imageName: string | undefined;
    let imageDigest: string | undefined;
    if (rootfsDir !== undefined) {
      rootfs = { type: 'bind', source: rootfsDir, options: ['rbind', 'rw'] };
      imageName = rootfsDir;
    } else {
      if (!ref) throw new InvalidArgumentError('run: give an image (or a root directory)', 'image');
      const { images, snapshots } = this.imageSide(`run ${ref}`);
      const image = await images.ensure(ref);
      const { containerParent } = await images.unpack(image);
      imageConfig = image.config.config;
      imageName = ref;
      imageDigest = image.manifestDigest;
      snapshotKey = `container-${randomBytes(16).toString('hex')}`;
      const mounts = await snapshots.prepare(snapshotKey, containerParent);
      if (mounts.length !== 1) {
        await snapshots.remove(snapshotKey).catch(() => {});
        throw new FailedPreconditionError(
          `run ${ref}: the snapshotter returned ${mounts.length} mounts; one root mount is supported`,
        );
      }
      rootfs = mounts[0]!;
    }
    try {
      const proc = processFromImage(imageConfig, { entrypoint, command, workdir, user, env });
      const stopSignal = stopSignalOf(runtimeConfigOf(imageConfig).StopSignal);
      return await this.containers.create({
        ...(stopSignal ? { stopSignal } : {}),
        ...rest,
        ...proc,
        image: imageName,
        imageDigest,
        rootfs,
        snapshotKey,
        snapshotter: snapshotKey ? this.snapshots?.name : undefined,
      });
    } catch (err) {
      if (snapshotKey) await this.snapshots?.remove(snapshotKey).catch(() => {});
      throw err;
    }
  }

  /**
   * Runs a process in a container with its stdio relayed from and to `io` (as `docker exec -i`):
   * the container only ever holds pipes, or with `opts.terminal` a pseudo-terminal of its own
   * (docker's -t), never the caller's terminal or files. With `io.stdin` its input is copied to
   * the process, else the process gets none. With a terminal, its output (stderr too) comes on
   * `io.stdout`.
   */
  async execRelayed(ref: string, opts: Omit<ExecOptions, 'stdio'>, io: ExecStreams): Promise<RelayedExec> {
    const handle = await this.containers.exec(ref, {
      ...opts,
      stdio: [io.stdin ? 'pipe' : 'ignore', 'pipe', 'pipe'],
    });
    return {
      signal: (signal) => handle.child.kill(signal),
      resize: (rows, cols) => handle.resize(rows, cols),
      exitCode: relayExec(handle, io),
    };
  }
}

export interface ImageRuntime {
  runtime: Runtime;
  images: ImageStore;
  content: LocalContentStore;
  /** The runtime's root directory. */
  root: string;
}

export type { BuildEvent, BuildOptions, BuildResult } from './build/image-builder.js';

/**
 * Builds an image from a Dockerfile on this runtime: RUN steps in its containers, layers into its
 * content store, the image named in its image store (build/image-builder.ts, loaded on first use).
 */
export async function buildImage(rt: ImageRuntime, opts: BuildOptions): Promise<BuildResult> {
  const { buildImage: build } = await import('./build/image-builder.js');
  return build(
    {
      images: rt.images,
      content: rt.content,
      containers: rt.runtime.containers,
      ensureImage: (ref) => rt.runtime.ensureImage(ref),
      root: rt.root,
    },
    opts,
  );
}

/**
 * The whole runtime of a root: content store, snapshotter (probed unless chosen), image store
 * (with `puller` for images it lacks, or a registry client made with `registry`: credentials,
 * the cluster registry, progress), containers.
 */
export async function openImageRuntime(
  root: string,
  opts: Omit<RuntimeOptions, 'root' | 'images' | 'snapshots'> & {
    snapshotter?: SnapshotterChoice;
    logger?: Logger;
    puller?: ImagePuller;
    registry?: RegistryClientOptions;
  } = {},
): Promise<ImageRuntime> {
  const { snapshotter: choice, logger, registry, ...rest } = opts;
  const { puller = registry ? registryPuller(registry) : undefined, ...runtimeOptions } = rest;
  const { content, snapshotter, images } = await openImageSide(root, {
    ...(choice !== undefined ? { snapshotter: choice } : {}),
    ...(logger !== undefined ? { logger } : {}),
  });
  const pulls = new ImagePulls(images, puller);
  const service: ImageService = {
    ensure: (ref, policy) => pulls.ensure(ref, policy),
    // only ever given what ensure returned
    unpack: (image) => images.unpack(image as ResolvedImage, { initLayer: true }),
  };
  const runtime = await Runtime.open({ ...runtimeOptions, root, images: service, snapshots: snapshotter });
  return { runtime, images, content, root };
}

/** A registry client as the image store's puller, made (and its HTTP code loaded) at the first pull. */
function registryPuller(options: RegistryClientOptions): ImagePuller {
  let client: Promise<RegistryClient> | undefined;
  return {
    async pull(ref, into) {
      client ??= import('../../proto/oci/registry-client.js').then((m) => new m.RegistryClient(options));
      await (await client).pull(ref, into);
    },
  };
}
