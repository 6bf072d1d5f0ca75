/**
 * `skiff image build`: a Dockerfile run on the local runtime, step by step.
 *
 *   Dockerfile ─► dockerfile.ts (parse) ─► build-plan.ts (stages, ARG scoping, per-step config)
 *   for each step of each needed stage:
 *     cache key (build-cache.ts) ── hit ─► CACHED, the recorded state
 *       │ miss
 *       ├ ENV, CMD, LABEL, …      the config changes, no layer (history empty_layer)
 *       ├ RUN                     image layers unpacked (ImageStore.unpackLayers) → the step's init
 *       │                         layer → a writable snapshot → a container of this runtime (its
 *       │                         usual confinement; host network or none) → its upper dir as a
 *       │                         layer (upper-diff.ts, layer-tar.ts) → content store
 *       ├ COPY / ADD              the sources (context through .dockerignore, or a stage's root)
 *       │                         as layer entries (copy-step.ts) → content store
 *       └ WORKDIR                 a layer with the directory when the root lacks it
 *   image config + OCI manifest ─► content store ─► tagged in the image store (only on success)
 *
 * Layers are always the tar written to the content store; the snapshots later steps run on are
 * unpacked from those blobs by the runtime's one unpacker, so what runs is what is pushed.
 * Everything a step makes (container, writable snapshot) is removed in a `finally`, also when the
 * step fails or the build is cancelled (AbortSignal); blobs of a failed build are left to
 * `skiff runtime prune`, and no name is changed.
 */
import { randomBytes } from 'node:crypto';
import { closeSync, constants, openSync, readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { FailedPreconditionError, InvalidArgumentError, SkiffError } from '../../../proto/errors.js';
import type { LocalContentStore } from '../../../proto/oci/local-content-store.js';
import { sha256Digest, type Digest } from '../../../proto/oci/digest.js';
import { MAX_CONFIG_BYTES, chainIds, hostPlatform, type Descriptor } from '../../../proto/oci/manifests.js';
import { MediaType } from '../../../proto/oci/media-types.js';
import { parseReference } from '../../../proto/oci/reference.js';
import type { LinuxContainerRuntime } from '../containers/container-runtime.js';
import type { ImageStore, LayerInfo } from '../images/image-store.js';
import { INIT_LAYER_FILES } from '../images/init-layer.js';
import { BuildCache, cacheKey, type BuildState, type HistoryEntry } from './build-cache.js';
import {
  StageEvaluator,
  planBuild,
  stageReference,
  type RuntimeConfig,
  type Stage,
  type Step,
} from './build-plan.js';
import { copyEntries, entriesChecksum, type CopySource } from './copy-step.js';
import { dockerfileError, parseDockerfile, type Instruction } from './dockerfile.js';
import { DockerIgnore } from './dockerignore.js';
import { LayerStack, PathEscapeError } from './layer-stack.js';
import { writeLayer, type LayerEntry, type WrittenLayer } from './layer-tar.js';
import { diffUpper } from './upper-diff.js';

export interface BuildOptions {
  /** The build context directory. */
  context: string;
  /** The Dockerfile's path (default: Dockerfile in the context). */
  dockerfile?: string;
  /** Names for the image (`web:1`: the cluster registry's repository, as `skiff image tag`). */
  tags: string[];
  buildArgs?: ReadonlyMap<string, string>;
  target?: string;
  noCache?: boolean;
  /** RUN's network: the machine's ('host', the default) or an empty namespace ('none'). */
  network?: 'host' | 'none';
  /** Seconds since 1970 for every mtime and `created` (SOURCE_DATE_EPOCH; default 0). */
  epoch?: number;
  signal?: AbortSignal;
  onEvent?: (event: BuildEvent) => void;
}

export type BuildEvent =
  /** A step begins (FROM, a miss) or was found in the cache (`cached`: done already). */
  | { type: 'step'; step: number; total: number; text: string; cached: boolean }
  /** A line of RUN output (`partial`: the command has not ended it yet). */
  | { type: 'output'; step: number; stream: 'stdout' | 'stderr'; text: string; partial: boolean }
  | { type: 'warning'; text: string };

export interface BuildResult {
  manifestDigest: Digest;
  /** The image ID (config digest). */
  id: Digest;
  tags: string[];
  steps: number;
  cachedSteps: number;
}

/** What the builder needs of the runtime (openImageRuntime gives each). */
export interface BuildRuntime {
  images: ImageStore;
  content: LocalContentStore;
  containers: LinuxContainerRuntime;
  /** The local image for a reference, pulled when missing. */
  ensureImage(ref: string): Promise<unknown>;
  /** The runtime root (the build cache lives under it). */
  root: string;
}

/** A RUN step that exited non-zero: its line, exit code and output tail. */
export class BuildStepError extends InvalidArgumentError {
  constructor(
    message: string,
    readonly line: number,
    readonly exitCode: number,
  ) {
    super(message, 'dockerfile');
  }
}

const BUILD_LABEL = 'skiff.io/build';

export async function buildImage(rt: BuildRuntime, opts: BuildOptions): Promise<BuildResult> {
  if (!rt.images.snapshotter.layersStack) {
    throw new FailedPreconditionError(
      `build image: skiff image build needs the overlay snapshotter (a RUN step's layer is its overlay upper dir); this runtime uses ${rt.images.snapshotter.name}`,
    );
  }
  const dockerfilePath = opts.dockerfile ?? join(opts.context, 'Dockerfile');
  let text: string;
  try {
    // the context's own Dockerfile is read inside the context, as its COPY sources are: one that
    // is a symlink to a host file printed that file's first line in the parse error
    text =
      opts.dockerfile !== undefined
        ? await readFile(opts.dockerfile, 'utf8')
        : readContextFile(opts.context, 'Dockerfile');
  } catch (err) {
    throw new InvalidArgumentError(`build image: read ${dockerfilePath}: ${(err as Error).message}`, 'file', {
      cause: err,
    });
  }
  // a bad name is refused before any work, not after it
  for (const tag of opts.tags) parseReference(tag, 'tag');
  const plan = planBuild(parseDockerfile(text), opts.buildArgs ?? new Map(), opts.target, hostPlatform());
  const emit = opts.onEvent ?? (() => undefined);
  if (plan.unusedBuildArgs.length > 0)
    emit({ type: 'warning', text: `build args not consumed by any ARG: ${plan.unusedBuildArgs.join(', ')}` });
  let ignore: DockerIgnore | undefined;
  let ignoreText: string | undefined;
  try {
    ignoreText = readContextFile(opts.context, '.dockerignore');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT')
      throw new InvalidArgumentError(`build image: .dockerignore: ${(err as Error).message}`, 'file', {
        cause: err,
      });
  }
  if (ignoreText !== undefined) ignore = new DockerIgnore(ignoreText);
  const builder = new Builder(rt, opts, plan.escape, emit, ignore);
  const lease = await rt.images.lease();
  try {
    builder.hold = (d) => lease.hold(d);
    const total = plan.order.reduce((n, i) => n + 1 + plan.stages[i]!.instructions.length, 0);
    builder.total = total;
    for (const index of plan.order) {
      const stage = plan.stages[index]!;
      builder.stageStates.set(index, await builder.buildStage(stage, plan));
    }
    const final = builder.stageStates.get(plan.target)!;
    return await builder.commitImage(final);
  } finally {
    await lease.release().catch(() => undefined);
  }
}

/**
 * A regular file of the context, found as COPY finds its sources: a symlink is followed only
 * inside the context, and a fifo or device (which would block or never end) is refused.
 */
function readContextFile(context: string, name: string): string {
  const stack = LayerStack.plain(context);
  let rel: string;
  try {
    rel = stack.resolve(name, true, 'refuse');
  } catch (err) {
    if (err instanceof PathEscapeError)
      throw new Error(`${err.message.replace('the root', 'the build context')}; refused`);
    throw err;
  }
  const found = stack.lookup(rel);
  if (!found)
    throw Object.assign(new Error(`${name}: no such file in the build context`), { code: 'ENOENT' });
  if (!found.stat.isFile()) throw new Error(`${name} is not a regular file; refused`);
  const fd = openSync(found.hostPath, constants.O_RDONLY | constants.O_NOFOLLOW);
  try {
    return readFileSync(fd, 'utf8');
  } finally {
    closeSync(fd);
  }
}

class Builder {
  readonly stageStates = new Map<number, BuildState>();
  total = 0;
  private step = 0;
  private cached = 0;
  hold: (digest: Digest) => Promise<void> = async () => undefined;
  private readonly cache: BuildCache;
  private readonly epoch: number;
  private readonly created: string;
  private contextStack: LayerStack | undefined;
  /** Opaque directories of each committed layer directory read so far (layer-stack.ts). */
  private readonly markers = new Map<string, Promise<Set<string>>>();
  private stages: Stage[] = [];
  private currentStage = 0;

  constructor(
    private readonly rt: BuildRuntime,
    private readonly opts: BuildOptions,
    private readonly escape: string,
    private readonly emit: (e: BuildEvent) => void,
    private readonly ignore: DockerIgnore | undefined,
  ) {
    this.cache = new BuildCache(join(rt.root, 'build-cache'));
    this.epoch = opts.epoch ?? 0;
    this.created = new Date(this.epoch * 1000).toISOString().replace('.000Z', 'Z');
  }

  private checkCancelled(): void {
    if (this.opts.signal?.aborted) throw new FailedPreconditionError('build image: cancelled');
  }

  async buildStage(stage: Stage, plan: ReturnType<typeof planBuild>): Promise<BuildState> {
    this.stages = plan.stages;
    this.currentStage = stage.index;
    const host = hostPlatform();
    if (stage.platform !== undefined && stage.platform !== `${host.os}/${host.architecture}`) {
      throw dockerfileError(
        stage.fromLine,
        `FROM --platform=${stage.platform}: skiff builds for this machine's platform only (${host.os}/${host.architecture})`,
      );
    }
    this.checkCancelled();
    // a FROM is cached when nothing has to be fetched: a stage, scratch, or a local image
    const local = !this.opts.noCache && ('image' in stage.base ? await this.isLocal(stage.base.image) : true);
    this.emit({ type: 'step', step: ++this.step, total: this.total, text: stage.fromText, cached: local });
    if (local) this.cached++;
    let state: BuildState;
    if ('stage' in stage.base) state = structuredClone(this.stageStates.get(stage.base.stage)!);
    else if ('scratch' in stage.base) {
      const platform = hostPlatform();
      state = { os: platform.os, architecture: platform.architecture, layers: [], config: {}, history: [] };
    } else state = await this.baseImage(stage.base.image, stage.fromLine);
    const evaluator = new StageEvaluator(plan, state.config);
    for (const ins of stage.instructions) {
      this.checkCancelled();
      const { step, description } = evaluator.apply(ins);
      this.step++;
      const next: BuildState = { ...state, config: structuredClone(evaluator.config) };
      state = await this.runStep(state, next, ins, step, description, evaluator);
    }
    return state;
  }

  private async isLocal(ref: string): Promise<boolean> {
    try {
      await this.rt.images.resolve(ref);
      return true;
    } catch {
      return false;
    }
  }

  /** The state of a base image: its layers, config and history (pulled when missing). */
  private async baseImage(ref: string, line: number): Promise<BuildState> {
    try {
      await this.rt.ensureImage(ref);
    } catch (err) {
      if (err instanceof SkiffError) throw dockerfileError(line, `FROM ${ref}: ${err.message}`);
      throw err;
    }
    const image = await this.rt.images.resolve(ref);
    const raw = JSON.parse((await this.rt.content.readAll(image.id, MAX_CONFIG_BYTES)).toString('utf8')) as {
      variant?: string;
      history?: HistoryEntry[];
    };
    for (const l of image.layers) await this.hold(l.digest);
    return {
      os: image.config.os,
      architecture: image.config.architecture,
      ...(raw.variant ? { variant: raw.variant } : {}),
      layers: image.layers.map((l) => ({
        digest: l.digest,
        diffId: l.diffId,
        size: l.size,
        mediaType: l.mediaType,
      })),
      config: structuredClone(image.config.config) as RuntimeConfig,
      history: Array.isArray(raw.history) ? raw.history : [],
    };
  }

  private async runStep(
    parent: BuildState,
    next: BuildState,
    ins: Instruction,
    step: Step,
    description: string,
    evaluator: StageEvaluator,
  ): Promise<BuildState> {
    const extra = [`epoch=${this.epoch}`];
    let entries: LayerEntry[] | undefined;
    if (step.kind === 'run') extra.push(...evaluator.argEnv());
    if (step.kind === 'copy') {
      entries = await copyEntries(
        step,
        ins.line,
        await this.copySource(step.from, ins.line),
        await this.rootOf(parent),
      );
      extra.push(await entriesChecksum(entries));
    }
    if (step.kind === 'workdir') {
      const root = await this.rootOf(parent);
      let resolved = step.path.slice(1);
      try {
        resolved = root.resolve(resolved, true, 'clamp');
      } catch {
        // a symlink loop: mkdir in the container would fail the same way; make the plain path
      }
      const found = resolved === '' ? undefined : root.lookup(resolved);
      if (found && !found.stat.isDirectory())
        throw dockerfileError(
          ins.line,
          `WORKDIR ${step.path}: it exists in the image and is not a directory`,
        );
      if (!found && resolved !== '') {
        entries = [];
        const parts = resolved.split('/');
        for (let i = 1; i <= parts.length; i++) {
          const path = parts.slice(0, i).join('/');
          const existing = root.lookup(path);
          entries.push(
            existing
              ? {
                  path,
                  type: 'directory',
                  mode: existing.stat.mode & 0o7777,
                  uid: existing.stat.uid,
                  gid: existing.stat.gid,
                }
              : { path, type: 'directory', mode: 0o755, uid: 0, gid: 0 },
          );
        }
      }
    }
    const key = cacheKey(parent, description, extra);
    if (!this.opts.noCache) {
      const hit = await this.cache.get(key, (d) => this.rt.content.has(d));
      if (hit) {
        for (const l of hit.layers) await this.hold(l.digest);
        this.cached++;
        this.emit({ type: 'step', step: this.step, total: this.total, text: ins.text, cached: true });
        return hit;
      }
    }
    this.emit({ type: 'step', step: this.step, total: this.total, text: ins.text, cached: false });
    let layer: WrittenLayer | undefined;
    // a name the layer cannot hold (.wh.*) is refused at its line
    if (step.kind === 'run') layer = await this.atLine(ins, () => this.run(parent, step.argv, step.env, ins));
    else if (entries !== undefined) {
      const written = entries;
      layer = await this.atLine(ins, () => writeLayer(written, this.rt.content, this.epoch));
    }
    const history: HistoryEntry = {
      created: this.created,
      created_by: description,
      comment: 'skiff image build',
    };
    if (layer) {
      await this.hold(layer.digest);
      next.layers = [
        ...parent.layers,
        { digest: layer.digest, diffId: layer.diffId, size: layer.size, mediaType: layer.mediaType },
      ];
      // the layer goes through the runtime's unpacker now, as a pull of the image would: a
      // hostile ADD archive fails here at its line, and the next step's snapshot is ready
      await this.unpack(next, ins);
    } else {
      history.empty_layer = true;
    }
    next.history = [...parent.history, history];
    await this.cache.put(key, next);
    return next;
  }

  private unpack(state: BuildState, ins: Instruction): Promise<unknown> {
    return this.atLine(ins, () => this.rt.images.unpackLayers(this.layerInfos(state)));
  }

  /** `fn`, its refusals named by the instruction's line. */
  private async atLine<T>(ins: Instruction, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      if (
        err instanceof SkiffError &&
        !(err instanceof BuildStepError) &&
        !err.message.startsWith('Dockerfile:')
      )
        throw dockerfileError(ins.line, `${ins.text}: ${err.message}`);
      throw err;
    }
  }

  private layerInfos(state: BuildState): LayerInfo[] {
    const chains = chainIds(
      state.layers.map((l) => l.diffId),
      sha256Digest,
    );
    return state.layers.map((l, i) => ({ ...l, chainId: chains[i]! }));
  }

  /** The root file system of a state, as a view of its unpacked layers (none: empty). */
  private async rootOf(state: BuildState): Promise<LayerStack> {
    const layers = this.layerInfos(state);
    if (layers.length === 0) return LayerStack.open([]);
    await this.rt.images.unpackLayers(layers);
    return LayerStack.open(await this.layerDirs(layers.at(-1)!.chainId), this.markers);
  }

  /** The directories of a committed snapshot's layers, top first, from a view's mount description. */
  private async layerDirs(top: string): Promise<string[]> {
    const snapshots = this.rt.images.snapshotter;
    const key = `build-view-${randomBytes(8).toString('hex')}`;
    const mounts = await snapshots.view(key, top, { labels: { [BUILD_LABEL]: 'view' } });
    await snapshots.remove(key);
    const mount = mounts[0]!;
    if (mount.type === 'bind') return [mount.source];
    const lower = mount.options.find((o) => o.startsWith('lowerdir='));
    return lower ? lower.slice('lowerdir='.length).split(':') : [];
  }

  private async copySource(from: string | undefined, line: number): Promise<CopySource> {
    if (from === undefined) {
      this.contextStack ??= LayerStack.plain(this.opts.context);
      return {
        stack: this.contextStack,
        escape: 'refuse',
        keepOwners: false,
        ...(this.ignore ? { ignore: this.ignore } : {}),
        what: 'the build context',
      };
    }
    const index = stageReference(this.stages, from, this.currentStage);
    const state = index !== undefined ? this.stageStates.get(index) : await this.baseImage(from, line);
    if (!state) throw dockerfileError(line, `COPY --from=${from}: that stage was not built`);
    return {
      stack: await this.rootOf(state),
      escape: 'clamp',
      keepOwners: true,
      what: index !== undefined ? `stage ${this.stages[index]!.name ?? index}` : `image ${from}`,
    };
  }

  /** Runs a RUN step in a container on the state's root; its upper dir becomes the layer. */
  private async run(
    state: BuildState,
    argv: string[],
    env: string[],
    ins: Instruction,
  ): Promise<WrittenLayer> {
    const layers = this.layerInfos(state);
    if (layers.length === 0)
      throw dockerfileError(
        ins.line,
        'RUN on an empty file system (FROM scratch with nothing copied yet): there is no program to run',
      );
    await this.rt.images.unpackLayers(layers);
    const top = layers.at(-1)!.chainId;
    const initKey = `${top}-build-init`;
    // the mount points (and /etc/resolv.conf) below the step's own layer, so its diff lacks them
    await this.rt.images.ensureInitLayer(top, {
      key: initKey,
      files: [...INIT_LAYER_FILES, '/etc/resolv.conf'],
      what: `make the build init layer of Dockerfile:${ins.line}`,
    });
    const snapshots = this.rt.images.snapshotter;
    const key = `build-${randomBytes(12).toString('hex')}`;
    this.checkCancelled();
    const mounts = await snapshots.prepare(key, initKey, { labels: { [BUILD_LABEL]: 'run' } });
    let container: string | undefined;
    const output: string[] = [];
    try {
      const config = state.config;
      const info = await this.atLine(ins, () =>
        this.rt.containers.create({
          rootfs: mounts[0]!,
          argv,
          env,
          cwd: config.WorkingDir || '/',
          ...(config.User ? { user: config.User } : {}),
          network: { mode: this.opts.network ?? 'host' },
          labels: { [BUILD_LABEL]: 'run' },
          name: `skiff-build-${randomBytes(6).toString('hex')}`,
        }),
      );
      container = info.id;
      const id = info.id;
      const cancel = () => void this.rt.containers.kill(id, 'SIGKILL').catch(() => undefined);
      this.opts.signal?.addEventListener('abort', cancel, { once: true });
      try {
        // a USER the image lacks, a WORKDIR that is a file: refused at start, named by the line
        await this.atLine(ins, () => this.rt.containers.start(id));
        // a cancel that came while the container was being made: the listener was not there yet
        if (this.opts.signal?.aborted) cancel();
        for await (const e of this.rt.containers.logs(id, { follow: true })) {
          output.push(e.text);
          if (output.length > 20) output.shift();
          this.emit({ type: 'output', step: this.step, stream: e.stream, text: e.text, partial: e.partial });
        }
        const exit = await this.rt.containers.wait(id);
        this.checkCancelled();
        if (exit.exitCode !== 0) {
          throw new BuildStepError(
            `Dockerfile:${ins.line}: ${ins.text}: the command exited with code ${exit.exitCode}${exit.error ? ` (${exit.error})` : ''}`,
            ins.line,
            exit.exitCode,
          );
        }
      } finally {
        this.opts.signal?.removeEventListener('abort', cancel);
      }
      await this.rt.containers.remove(id, { force: true });
      container = undefined;
      const { dir } = await snapshots.writableLayer(key);
      return await writeLayer(await diffUpper(dir), this.rt.content, this.epoch);
    } finally {
      if (container) await this.rt.containers.remove(container, { force: true }).catch(() => undefined);
      await snapshots.remove(key).catch(() => undefined);
    }
  }

  /** Writes the image config and manifest, then names the image: the build's only visible change. */
  async commitImage(state: BuildState): Promise<BuildResult> {
    const config = {
      created: this.created,
      architecture: state.architecture,
      os: state.os,
      ...(state.variant ? { variant: state.variant } : {}),
      config: state.config,
      rootfs: { type: 'layers', diff_ids: state.layers.map((l) => l.diffId) },
      history: state.history,
    };
    const configBytes = Buffer.from(JSON.stringify(config));
    const configBlob = await this.rt.content.ingest(Readable.from([configBytes]));
    await this.hold(configBlob.digest);
    const manifest = {
      schemaVersion: 2,
      mediaType: MediaType.ociManifest,
      config: { mediaType: MediaType.ociConfig, digest: configBlob.digest, size: configBlob.size },
      layers: state.layers.map((l) => ({ mediaType: l.mediaType, digest: l.digest, size: l.size })),
    };
    const manifestBytes = Buffer.from(JSON.stringify(manifest));
    const manifestBlob = await this.rt.content.ingest(Readable.from([manifestBytes]));
    await this.hold(manifestBlob.digest);
    const descriptor: Descriptor = {
      mediaType: MediaType.ociManifest,
      digest: manifestBlob.digest,
      size: manifestBlob.size,
    };
    if (this.opts.tags.length === 0) await this.rt.images.tag(manifestBlob.digest, descriptor);
    for (const tag of this.opts.tags) await this.rt.images.tag(tag, descriptor);
    return {
      manifestDigest: manifestBlob.digest,
      id: configBlob.digest,
      tags: this.opts.tags,
      steps: this.step,
      cachedSteps: this.cached,
    };
  }
}
