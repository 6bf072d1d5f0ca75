/**
 * `skiff image [--root DIR] VERB`: images of the local runtime's store (the one `skiff runtime`
 * uses) and registries.
 *
 *   pull REF | push REF     through proto/oci/registry-client.ts; `host:port/repo:tag` (or
 *                           `…@sha256:…`) is that registry, a short name (`web:1`) the cluster
 *                           registry (the context's HTTP address, /v2/, its bearer token);
 *                           credentials and insecure registries from the client config
 *   ls | rm | inspect | tag | save -o F | load -i F     the local store
 *   build -t NAME [-f F] [--build-arg K=V] [--target S] [--no-cache] [--network host|none] DIR
 *                           a Dockerfile run on this runtime (node-agent/runtime/build/), the
 *                           image named in the same store, so `skiff image push NAME` pushes it
 *
 * Progress: on a terminal, one bar per layer with bytes and rate, redrawn in place; otherwise
 * plain lines when a blob starts, is retried, ends or was already there. `skiff runtime run`
 * pulls what it lacks through `registryPuller` (its progress on stderr).
 */
import { Option, type Command } from 'commander';
import { resolve as resolvePath } from 'node:path';
import type { Writable } from 'node:stream';
import { FailedPreconditionError, InvalidArgumentError, PermissionDeniedError } from '../../proto/errors.js';
import type { Descriptor } from '../../proto/oci/manifests.js';
import type { Digest } from '../../proto/oci/digest.js';
import type {
  BlobState,
  PullResult,
  PullSink,
  RegistryClient,
  TransferEvent,
  TransferListener,
} from '../../proto/oci/registry-client.js';
import { humanDuration } from '../../proto/printing/age.js';
// only the image side is loaded for every verb: the container runtime (runtime.ts) only by the
// verbs that use it (rm, build), so that a pull or a push starts sooner
import { DEFAULT_ROOT, openImageSide, type ImageSide } from '../../node-agent/runtime/image-side.js';
import type { BuildEvent, ImageRuntime, SnapshotterChoice } from '../../node-agent/runtime/runtime.js';
import { collect, globalOptions } from './context.js';
import { humanSize } from '../../proto/printing/size.js';

interface ImageGlobals {
  root: string;
  snapshotter?: SnapshotterChoice;
}

function imageGlobals(command: Command): ImageGlobals {
  let c: Command | null = command;
  while (c && c.name() !== 'image') c = c.parent;
  return (c?.opts() as ImageGlobals | undefined) ?? { root: DEFAULT_ROOT };
}

function checkRoot(): void {
  if (process.getuid?.() !== 0) {
    throw new PermissionDeniedError(
      'skiff image: the runtime’s image store belongs to root (it is the one `skiff runtime` uses); run it as root',
    );
  }
}

/** The root's content and image stores, without the container runtime (most verbs need no more). */
async function openStore(command: Command): Promise<ImageSide> {
  checkRoot();
  const g = imageGlobals(command);
  // the image verbs move blobs and names only: no overlay probe unless something unpacks
  return openImageSide(resolvePath(g.root ?? DEFAULT_ROOT), {
    snapshotter: g.snapshotter ?? 'auto',
    deferSnapshotter: true,
  });
}

/** The whole runtime of the root: for the verbs that look at or run containers. */
async function openRuntime(
  command: Command,
  puller?: ReturnType<typeof registryPuller>,
): Promise<ImageRuntime> {
  checkRoot();
  const g = imageGlobals(command);
  const { openImageRuntime } = await import('../../node-agent/runtime/runtime.js');
  return openImageRuntime(resolvePath(g.root ?? DEFAULT_ROOT), {
    snapshotter: g.snapshotter ?? 'auto',
    ...(puller ? { puller } : {}),
  });
}

/** A registry client with the client config's registries and cluster (the command's context). */
export async function registryClientFor(
  command: Command,
  onEvent?: TransferListener,
): Promise<RegistryClient> {
  const [{ resolveRegistrySettings }, { RegistryClient }] = await Promise.all([
    import('../config.js'),
    import('../../proto/oci/registry-client.js'),
  ]);
  const opts = globalOptions(command);
  const settings = resolveRegistrySettings({
    ...(opts.context !== undefined ? { context: opts.context } : {}),
    ...(opts.token !== undefined ? { token: opts.token } : {}),
  });
  return new RegistryClient({
    config: { ...(settings.cluster ? { cluster: settings.cluster } : {}), hosts: settings.registries },
    ...(onEvent ? { onEvent } : {}),
  });
}

/**
 * The ImagePuller `skiff runtime run` gives the runtime: the client is made (and the config read)
 * only when an image is missing; progress goes to stderr.
 */
export function registryPuller(command: Command): { pull(ref: string, into: PullSink): Promise<void> } {
  return {
    async pull(ref, into) {
      process.stderr.write(`Unable to find image '${ref}' locally\n`);
      const progress = new TransferProgress(process.stderr, process.stderr.isTTY === true);
      const client = await registryClientFor(command, (e) => progress.onEvent(e));
      try {
        const result = await client.pull(ref, into);
        progress.finish();
        process.stderr.write(`Digest: ${result.manifest.digest}\n`);
      } catch (err) {
        progress.finish();
        throw err;
      } finally {
        client.close();
      }
    },
  };
}

// ------------------------------------------------------------------------------------ progress

interface BlobRow {
  digest: Digest;
  size: number;
  role: string;
  state: BlobState;
  bytes: number;
  startBytes: number;
  startedAt?: number;
  endedAt?: number;
  note?: string;
}

const short = (digest: string) => digest.replace(/^sha256:/, '').slice(0, 12);

function rate(row: BlobRow, now: number): string {
  if (row.startedAt === undefined) return '';
  const seconds = ((row.endedAt ?? now) - row.startedAt) / 1000;
  if (seconds <= 0) return '';
  return `${humanSize(Math.round((row.bytes - row.startBytes) / seconds))}/s`;
}

/**
 * Draws what a pull or push reports: per-blob bars redrawn in place on a terminal (at most ten
 * times a second), plain lines otherwise. `now` is a parameter for tests.
 */
export class TransferProgress {
  private readonly rows = new Map<Digest, BlobRow>();
  private direction: 'pull' | 'push' = 'pull';
  private drawn = 0;
  private lastDraw = 0;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly out: Writable & { columns?: number },
    private readonly tty: boolean,
    private readonly now: () => number = Date.now,
  ) {}

  onEvent(e: TransferEvent): void {
    const t = this.now();
    if (e.type === 'resolved') {
      this.direction = e.direction;
      const total = e.blobs.reduce((s, b) => s + b.size, 0);
      this.line(
        `${e.direction} ${e.ref}: manifest ${e.manifest}${e.index ? ` (from index ${e.index})` : ''}, ${e.blobs.length} blobs (${humanSize(total)})`,
      );
      return;
    }
    if (e.type === 'manifest') {
      this.line(e.direction === 'pull' ? `tagged ${e.tagged}` : `pushed manifest ${e.digest} as ${e.tagged}`);
      return;
    }
    let row = this.rows.get(e.digest);
    if (!row) {
      row = { digest: e.digest, size: e.size, role: e.role, state: e.state, bytes: 0, startBytes: 0 };
      this.rows.set(e.digest, row);
    }
    const before = row.state;
    row.state = e.state;
    row.bytes = e.bytes;
    if (e.state === 'started') {
      row.startedAt = t;
      row.startBytes = e.bytes;
      row.note = e.resumedFrom ? `resumed at ${humanSize(e.resumedFrom)}` : undefined;
    }
    if (e.state === 'progress' || e.state === 'retrying') row.state = 'started';
    if (e.state === 'retrying') row.note = `retrying (attempt ${e.attempt}): ${e.error}`;
    if (e.state === 'done' || e.state === 'failed' || e.state === 'exists') row.endedAt = t;
    if (e.state === 'failed') row.note = e.error;
    if (this.tty) {
      this.draw(e.state !== 'progress');
      return;
    }
    // plain lines: one per change of state, never per chunk
    const name = `${row.role} ${short(row.digest)}`;
    const verb = this.direction === 'pull' ? 'downloading' : 'uploading';
    if (e.state === 'exists' && before !== 'exists') {
      const where =
        this.direction === 'pull'
          ? 'already present'
          : e.mountedFrom !== undefined
            ? `mounted from ${e.mountedFrom}`
            : 'already in the registry';
      this.line(`${name}: ${where} (${humanSize(row.size)})`);
    } else if (e.state === 'started') {
      this.line(`${name}: ${verb} ${humanSize(row.size)}${row.note ? ` (${row.note})` : ''}`);
    } else if (e.state === 'retrying') {
      this.line(`${name}: ${row.note} at ${humanSize(e.bytes)}`);
    } else if (e.state === 'done') {
      const seconds = ((row.endedAt ?? t) - (row.startedAt ?? t)) / 1000;
      this.line(`${name}: done, ${humanSize(row.size)} in ${seconds.toFixed(1)}s (${rate(row, t) || '-'})`);
    } else if (e.state === 'failed') {
      this.line(`${name}: failed: ${e.error}`);
    }
  }

  /** Draws the final state of bars still live (they stay on screen). */
  finish(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    if (this.tty && this.drawn > 0) this.draw(true);
  }

  /** A line of text; on a terminal the bars drawn so far stay above it as they are now. */
  private line(text: string): void {
    if (this.tty && this.drawn > 0) {
      this.draw(true);
      this.drawn = 0;
      this.rows.clear();
    }
    this.out.write(`${text}\n`);
  }

  private draw(force: boolean): void {
    if (!this.tty) return;
    const t = this.now();
    if (!force && t - this.lastDraw < 100) {
      this.timer ??= setTimeout(() => {
        this.timer = undefined;
        this.draw(true);
      }, 100).unref();
      return;
    }
    this.lastDraw = t;
    const width = Math.max(40, (this.out.columns || 100) - 1);
    const lines = [...this.rows.values()].map((row) => renderBar(row, this.direction, width, t));
    let text = this.drawn > 0 ? `\x1b[${this.drawn}A` : '';
    for (const l of lines) text += `\x1b[2K${l}\n`;
    this.out.write(text);
    this.drawn = lines.length;
  }
}

/** One blob's line on a terminal: name, state or bar, bytes, rate. Pure. */
export function renderBar(row: BlobRow, direction: 'pull' | 'push', width: number, now: number): string {
  const name = `${short(row.digest)} ${row.role.padEnd(6)}`;
  let body: string;
  switch (row.state) {
    case 'waiting':
      body = 'waiting';
      break;
    case 'exists':
      body =
        direction === 'pull'
          ? `already present ${humanSize(row.size)}`
          : `already in the registry ${humanSize(row.size)}`;
      break;
    case 'done':
      body = `${direction === 'pull' ? 'pulled' : 'pushed'} ${humanSize(row.size)} ${rate(row, now)}`;
      break;
    case 'failed':
      body = `failed: ${row.note ?? ''}`;
      break;
    default: {
      const fraction = row.size > 0 ? Math.min(1, row.bytes / row.size) : 1;
      const barWidth = 30;
      const filled = Math.round(fraction * barWidth);
      const bar = `[${'='.repeat(Math.max(0, filled - 1))}${filled > 0 ? '>' : ''}${' '.repeat(barWidth - filled)}]`;
      body = `${bar} ${humanSize(row.bytes)}/${humanSize(row.size)} ${rate(row, now)}${row.note ? ` ${row.note}` : ''}`;
    }
  }
  const line = `${name} ${body}`;
  return line.length > width ? `${line.slice(0, width - 1)}…` : line;
}

/**
 * Prints a build's steps: `[2/7] RUN …` per step (`CACHED` after a step the cache had), the RUN
 * output as it comes. On a terminal the running step's line shows its elapsed time, redrawn in
 * place until output or the next step ends it; otherwise plain lines.
 */
export class BuildProgress {
  private live: { text: string; started: number } | undefined;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly out: Writable,
    private readonly tty: boolean,
    private readonly now: () => number = Date.now,
  ) {}

  onEvent(e: BuildEvent): void {
    if (e.type === 'step') {
      this.endLive();
      const text = `[${e.step}/${e.total}] ${e.text}`;
      if (e.cached) this.out.write(`${text} CACHED\n`);
      else if (!this.tty) this.out.write(`${text}\n`);
      else {
        this.live = { text, started: this.now() };
        this.out.write(text);
        this.timer = setInterval(() => this.redraw(), 100).unref();
      }
    } else if (e.type === 'output') {
      this.endLive();
      this.out.write(e.partial ? e.text : `${e.text}\n`);
    } else {
      this.endLive();
      this.out.write(`warning: ${e.text}\n`);
    }
  }

  private redraw(): void {
    if (!this.live) return;
    const seconds = ((this.now() - this.live.started) / 1000).toFixed(1);
    this.out.write(`\r\x1b[2K${this.live.text} ${seconds}s`);
  }

  /** Ends the running step's line (its last drawing stays). */
  finish(): void {
    this.endLive();
  }

  private endLive(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    if (this.live) {
      this.redraw();
      this.out.write('\n');
    }
    this.live = undefined;
  }
}

/** `--build-arg K=V` (or `K`, taking V from the environment, as docker does). */
function parseBuildArgs(args: string[]): Map<string, string> {
  const out = new Map<string, string>();
  for (const arg of args) {
    const eq = arg.indexOf('=');
    if (eq === 0) throw new InvalidArgumentError(`--build-arg ${arg}: the name is missing`, 'build-arg');
    if (eq > 0) out.set(arg.slice(0, eq), arg.slice(eq + 1));
    else if (process.env[arg] !== undefined) out.set(arg, process.env[arg]!);
  }
  return out;
}

/** SOURCE_DATE_EPOCH as seconds (every layer mtime and `created`), 0 without it. */
function sourceDateEpoch(): number {
  const text = process.env.SOURCE_DATE_EPOCH;
  if (text === undefined || text === '') return 0;
  if (!/^\d+$/.test(text))
    throw new InvalidArgumentError(
      `SOURCE_DATE_EPOCH=${text}: must be whole seconds since 1970`,
      'SOURCE_DATE_EPOCH',
    );
  return Number(text);
}

// ------------------------------------------------------------------------------------ verbs

export function registerImage(program: Command): void {
  const image = program
    .command('image')
    .description('images of the local runtime: pull and push them, list, tag, save and load them')
    .option('--root <dir>', 'runtime state directory (the one `skiff runtime` uses)', DEFAULT_ROOT)
    .enablePositionalOptions();
  image.hook('preAction', () => {
    if (process.platform !== 'linux') throw new FailedPreconditionError('skiff image: Linux only');
  });

  image
    .command('pull')
    .description('pull an image: host:port/repo:tag, …@sha256:…, or a short name from the cluster registry')
    .argument('<ref>')
    .action(async (ref: string, _flags: unknown, cmd: Command) => {
      const progress = new TransferProgress(process.stdout, process.stdout.isTTY === true);
      // the store opens (its overlay probe runs a process) while the client's code loads and the
      // client config is read, then while the registry is probed
      const opening = openStore(cmd);
      opening.catch(() => undefined); // awaited below; a client that cannot be made fails first
      const client = await registryClientFor(cmd, (e) => progress.onEvent(e));
      let result: PullResult | undefined;
      try {
        // a worker boots meanwhile: a pull asked for usually has layers to fetch
        const [{ images }] = await Promise.all([opening, client.warm(ref, { startWorker: true })]);
        // through the image store: its lease keeps what the pull writes from a prune meanwhile
        await images.pull(ref, {
          pull: async (name, into) => {
            result = await client.pull(name, into);
          },
        });
      } finally {
        progress.finish();
        client.close();
      }
      if (!result) return;
      const fetched = result.blobs.filter((b) => !b.present);
      const present = result.blobs.length - fetched.length;
      const resumed = fetched.reduce((s, b) => s + b.resumedFrom, 0);
      process.stdout.write(
        `Digest: ${result.manifest.digest}\n` +
          `Pulled ${ref}: ${fetched.length} blobs fetched, ${result.bytesFetched} bytes over the network (${humanSize(result.bytesFetched)})${resumed ? `, ${resumed} bytes kept from an interrupted pull` : ''}; ${present} already present\n`,
      );
    });

  image
    .command('build')
    .description('build an image from a Dockerfile on the local runtime (RUN steps run in its containers)')
    .argument('<context>', 'the build context directory')
    .option(
      '-t, --tag <name>',
      'name the image (repeatable); a short name is the cluster registry’s',
      collect,
    )
    .option('-f, --file <path>', 'the Dockerfile (default: CONTEXT/Dockerfile)')
    .option('--build-arg <KEY=VALUE>', 'set a build-time variable an ARG declares (repeatable)', collect)
    .option('--target <stage>', 'build up to this stage (FROM … AS stage) and name its result')
    .option('--no-cache', 'run every step, ignoring the build cache')
    .addOption(
      new Option('--network <mode>', 'RUN steps’ network: the machine’s (host) or none')
        .choices(['host', 'none', 'default'])
        .default('host'),
    )
    .action(
      async (
        context: string,
        flags: {
          tag?: string[];
          file?: string;
          buildArg?: string[];
          target?: string;
          cache: boolean;
          network: 'host' | 'none' | 'default';
        },
        cmd: Command,
      ) => {
        const rt = await openRuntime(cmd, registryPuller(cmd));
        const { buildImage } = await import('../../node-agent/runtime/runtime.js');
        const progress = new BuildProgress(process.stdout, process.stdout.isTTY === true);
        const abort = new AbortController();
        const cancel = () => abort.abort();
        const signals: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];
        for (const s of signals) process.on(s, cancel);
        try {
          const started = Date.now();
          const result = await buildImage(rt, {
            context: resolvePath(context),
            ...(flags.file !== undefined ? { dockerfile: resolvePath(flags.file) } : {}),
            tags: flags.tag ?? [],
            buildArgs: parseBuildArgs(flags.buildArg ?? []),
            ...(flags.target !== undefined ? { target: flags.target } : {}),
            noCache: !flags.cache,
            network: flags.network === 'none' ? 'none' : 'host',
            epoch: sourceDateEpoch(),
            signal: abort.signal,
            onEvent: (e) => progress.onEvent(e),
          });
          progress.finish();
          const seconds = ((Date.now() - started) / 1000).toFixed(1);
          process.stdout.write(
            `Built ${result.id} in ${seconds}s (${result.steps} steps, ${result.cachedSteps} cached)\n` +
              result.tags.map((t) => `Tagged ${t}\n`).join(''),
          );
        } catch (err) {
          progress.finish();
          if (abort.signal.aborted) {
            process.stderr.write('error: build cancelled; nothing was tagged\n');
            process.exitCode = 130;
            return;
          }
          throw err;
        } finally {
          for (const s of signals) process.off(s, cancel);
        }
      },
    );

  image
    .command('push')
    .description('push a local image to the registry its name says (tag it first: skiff image tag)')
    .argument('<ref>')
    .action(async (ref: string, _flags: unknown, cmd: Command) => {
      const { images, content } = await openStore(cmd);
      const resolved = await images.resolve(ref);
      const manifest: Descriptor = {
        mediaType: resolved.manifest.mediaType,
        digest: resolved.manifestDigest,
        size: (await content.info(resolved.manifestDigest)).size,
      };
      const progress = new TransferProgress(process.stdout, process.stdout.isTTY === true);
      const client = await registryClientFor(cmd, (e) => progress.onEvent(e));
      let result;
      try {
        result = await client.push(ref, { content, manifest });
      } finally {
        progress.finish();
        client.close();
      }
      const unique = [...new Map(result.blobs.map((b) => [b.digest, b])).values()];
      const mounted = unique.filter((b) => b.mountedFrom !== undefined).length;
      const existed = unique.filter((b) => b.existed).length;
      const sent = unique.length - mounted - existed;
      process.stdout.write(
        `${result.ref}: digest: ${result.manifest.digest} size: ${result.manifest.size}\n` +
          `Pushed ${sent} blobs (${humanSize(result.bytesSent - result.manifest.size)}) and the manifest; ${existed} already in the registry` +
          `${mounted ? `; ${mounted} mounted from another repository` : ''}; ${result.bytesSent} bytes over the network\n`,
      );
    });

  image
    .command('ls')
    .alias('list')
    .description('list local images')
    .option('--digests', 'show manifest digests')
    .option('-q, --quiet', 'only image IDs')
    .action(async (flags: { digests?: boolean; quiet?: boolean }, cmd: Command) => {
      const [{ images }, { renderTable }] = await Promise.all([openStore(cmd), import('../output/table.js')]);
      const list = await images.list();
      if (flags.quiet) {
        const ids = [...new Set(list.map((i) => i.id.replace(/^sha256:/, '').slice(0, 12)))];
        process.stdout.write(ids.map((id) => `${id}\n`).join(''));
        return;
      }
      const now = Date.now();
      const headers = [
        'REPOSITORY',
        'TAG',
        ...(flags.digests ? ['DIGEST'] : []),
        'IMAGE ID',
        'CREATED',
        'SIZE',
      ];
      const rows = list.map((i) => [
        i.repository,
        i.tag || '<none>',
        ...(flags.digests ? [i.manifestDigest] : []),
        i.id.replace(/^sha256:/, '').slice(0, 12),
        i.created ? `${humanDuration(now - Date.parse(i.created))} ago` : 'N/A',
        humanSize(i.size),
      ]);
      process.stdout.write(renderTable(headers, rows));
    });

  image
    .command('rm')
    .alias('rmi')
    .description(
      'remove image names (refused while a container uses the image); blobs go at `skiff runtime prune`',
    )
    .argument('<refs...>')
    .action(async (refs: string[], _flags: unknown, cmd: Command) => {
      const { images, runtime } = await openRuntime(cmd);
      const containers = await runtime.containers.list({ all: true });
      for (const ref of refs) {
        const resolved = await images.resolve(ref);
        const user = containers.find((c) => c.config.imageDigest === resolved.manifestDigest);
        if (user) {
          throw new FailedPreconditionError(
            `remove image ${ref}: container ${user.name} (${user.id.slice(0, 12)}) uses it; remove the container first`,
          );
        }
        for (const removed of await images.remove(ref)) process.stdout.write(`Untagged: ${removed}\n`);
      }
    });

  image
    .command('inspect')
    .description('show local images as JSON (names, manifest, config, layers)')
    .argument('<refs...>')
    .action(async (refs: string[], _flags: unknown, cmd: Command) => {
      const { images } = await openStore(cmd);
      const out = [];
      for (const ref of refs) out.push(await images.resolve(ref));
      process.stdout.write(`${JSON.stringify(out, null, 2)}\n`);
    });

  image
    .command('tag')
    .description('give a local image another name')
    .argument('<source>')
    .argument('<target>')
    .action(async (source: string, target: string, _flags: unknown, cmd: Command) => {
      const { images, content } = await openStore(cmd);
      const resolved = await images.resolve(source);
      await images.tag(target, {
        mediaType: resolved.manifest.mediaType,
        digest: resolved.manifestDigest,
        size: (await content.info(resolved.manifestDigest)).size,
      });
    });

  image
    .command('save')
    .description(
      'write images to a tar (OCI layout + docker save) that `docker load` and `skiff image load` read',
    )
    .argument('<refs...>')
    .requiredOption('-o, --output <file>', 'output tar file')
    .action(async (refs: string[], flags: { output: string }, cmd: Command) => {
      const { images } = await openStore(cmd);
      await images.save(refs, resolvePath(flags.output));
    });

  image
    .command('load')
    .description('load images from an OCI layout (dir or tar) or a `docker save` archive')
    .requiredOption('-i, --input <path>', 'archive or layout directory')
    .action(async (flags: { input: string }, cmd: Command) => {
      const { images } = await openStore(cmd);
      const result = await images.import(resolvePath(flags.input));
      for (const loaded of result.images) {
        const names = loaded.names.length > 0 ? loaded.names : [loaded.manifest.digest];
        for (const name of names) process.stdout.write(`Loaded image: ${name}\n`);
      }
    });
}
