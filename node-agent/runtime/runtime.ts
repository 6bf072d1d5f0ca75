/**
 * The runtime as one object: images (the image store), snapshots, and containers tied together.
 * `run` = resolve the image → unpack it (committed snapshots per layer, and the image's init
 * layer where layers stack) → prepare a writable snapshot on the init layer (else the top chain
 * ID) → create and start a container on the snapshot's mounts, with
 * entrypoint/cmd/env/workdir/user taken from the image config and overridden by the caller.
 *
 *   <root>/content, <root>/images, <root>/snapshots   the image side (images engineer)
 *   <root>/containers/<id>/                           the container side (containers/)
 */
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { InvalidArgumentError, FailedPreconditionError } from '../../proto/errors.js';
import type { Logger } from '../../proto/support/logger.js';
import { LocalContentStore } from '../../proto/oci/local-content-store.js';
import {
  LinuxContainerRuntime,
  type ContainerInfo,
  type CreateContainerOptions,
  type SnapshotRemover,
} from './containers/container-runtime.js';
import { ImageStore, type ResolvedImage } from './images/image-store.js';
import { openSnapshotter, type SnapshotterChoice } from './snapshots/open-snapshotter.js';
import { probeOverlay } from './sys/overlay-probe.js';
import { parseUser } from './containers/validate.js';
import type { RootMount } from './sys/helper-spec.js';

export const DEFAULT_ROOT = '/var/lib/skiff/runtime';

/** The part of a resolved image the container side needs (images/image-store.ts ResolvedImage). */
export interface RuntimeImage {
  /** The image ID (config digest). */
  id: string;
  manifestDigest: string;
  /** The OCI image config; `config` is its runtime part (Env, Cmd, Entrypoint, WorkingDir, User). */
  config: { config: Record<string, unknown> };
}

/** What the image store offers the runtime (images/image-store.ts ImageStore fits). */
export interface ImageService {
  resolve(ref: string): Promise<RuntimeImage>;
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
  /** Arguments after the image name: replace Cmd (Entrypoint stays). */
  command?: string[];
  env?: string[];
  workdir?: string;
  /** NAME|UID[:GROUP|GID], replacing the image's User. */
  user?: string;
}

/** The process a container runs: the image's defaults with the caller's overrides. Pure. */
export function processFromImage(
  imageConfig: Record<string, unknown>,
  overrides: ProcessOverrides,
): { argv: string[]; env: string[]; cwd: string; user: string } {
  const c = runtimeConfigOf(imageConfig);
  const entrypoint = stringList(c.Entrypoint, 'config.Entrypoint') ?? [];
  const cmd =
    overrides.command && overrides.command.length > 0
      ? overrides.command
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

export class Runtime {
  constructor(
    readonly containers: LinuxContainerRuntime,
    readonly images?: ImageService,
    readonly snapshots?: ContainerSnapshots,
  ) {}

  static async open(opts: {
    root?: string;
    images?: ImageService;
    snapshots?: ContainerSnapshots;
    /** See LinuxContainerRuntime.open: parked shims for a long-lived process (the agent). */
    warmShims?: number;
  }): Promise<Runtime> {
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
    });
    return new Runtime(containers, opts.images, given);
  }

  /** Creates a container from an image (or a directory) and starts it. */
  async run(opts: RunOptions): Promise<ContainerInfo> {
    const {
      image: ref,
      rootfsDir,
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
      if (!this.images || !this.snapshots) {
        throw new FailedPreconditionError(
          `run ${ref}: this runtime has no image store; run from a directory instead`,
        );
      }
      const image = await this.images.resolve(ref);
      const { containerParent } = await this.images.unpack(image);
      imageConfig = image.config.config;
      imageName = ref;
      imageDigest = image.manifestDigest;
      snapshotKey = `container-${randomBytes(16).toString('hex')}`;
      const mounts = await this.snapshots.prepare(snapshotKey, containerParent);
      if (mounts.length !== 1) {
        await this.snapshots.remove(snapshotKey).catch(() => {});
        throw new FailedPreconditionError(
          `run ${ref}: the snapshotter returned ${mounts.length} mounts; one root mount is supported`,
        );
      }
      rootfs = mounts[0]!;
    }
    const proc = processFromImage(imageConfig, { command, workdir, user, env });
    let created: ContainerInfo;
    try {
      created = await this.containers.create({
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
}

export interface ImageRuntime {
  runtime: Runtime;
  images: ImageStore;
  content: LocalContentStore;
}

/** The whole runtime of a root: content store, snapshotter (probed unless chosen), image store, containers. */
export async function openImageRuntime(
  root: string,
  opts: { snapshotter?: SnapshotterChoice; logger?: Logger; warmShims?: number } = {},
): Promise<ImageRuntime> {
  const content = await LocalContentStore.open(join(root, 'content'));
  const snapshotter = await openSnapshotter(root, {
    choice: opts.snapshotter ?? 'auto',
    probe: probeOverlay,
    logger: opts.logger,
  });
  const images = await ImageStore.open(join(root, 'images'), { content, snapshotter, logger: opts.logger });
  const service: ImageService = {
    resolve: (ref) => images.resolve(ref),
    // only ever given what resolve returned
    unpack: (image) => images.unpack(image as ResolvedImage, { initLayer: true }),
  };
  const runtime = await Runtime.open({
    root,
    images: service,
    snapshots: snapshotter,
    warmShims: opts.warmShims,
  });
  return { runtime, images, content };
}
