/**
 * `skiff runtime --root DIR …`: the embedded container runtime on its own, docker-style.
 * Containers: run, ps, logs, stop, kill, rm, exec, inspect. Image verbs go to the image store.
 */
import { Command, Option } from 'commander';
import { availableParallelism } from 'node:os';
import { resolve as resolvePath } from 'node:path';
import {
  FailedPreconditionError,
  InvalidArgumentError,
  NotFoundError,
  PermissionDeniedError,
  errorMessage,
} from '../../proto/errors.js';
import {
  DEFAULT_ROOT,
  Runtime,
  openImageRuntime,
  parseBytes,
  parseLabels,
  parseNetwork,
  parseSecurityOpts,
  parseVolume,
  signalNumber,
  type ContainerInfo,
  type ImageRuntime,
  type SnapshotterChoice,
} from '../../node-agent/runtime/runtime.js';
import { humanDuration } from '../../proto/printing/age.js';
import { humanSize } from '../../proto/printing/size.js';
import { renderTable } from '../output/table.js';
import { rawTerminal, terminalSize, type RawTerminal } from '../terminal.js';

/** A terminal's size when the caller's is unknown (output to a file or pipe), as docker's. */
const DEFAULT_TERMINAL = { rows: 24, cols: 80 };

interface RuntimeGlobals {
  root: string;
}

function rootOf(command: Command): string {
  let c: Command | null = command;
  while (c && c.name() !== 'runtime') c = c.parent;
  return resolvePath((c?.opts() as RuntimeGlobals | undefined)?.root ?? DEFAULT_ROOT);
}

function requireRoot(): void {
  if (process.getuid?.() !== 0) {
    throw new PermissionDeniedError(
      'skiff runtime: containers need root (namespaces, mounts, cgroups); run it as root',
    );
  }
}

/** Containers only: no image store is opened (and no overlay probe is paid for). */
async function openRuntime(command: Command): Promise<Runtime> {
  requireRoot();
  return Runtime.open({ root: rootOf(command) });
}

async function openImages(command: Command): Promise<ImageRuntime> {
  requireRoot();
  let c: Command | null = command;
  while (c && c.name() !== 'runtime') c = c.parent;
  const choice = (c?.opts() as { snapshotter?: SnapshotterChoice } | undefined)?.snapshotter;
  return openImageRuntime(rootOf(command), {
    snapshotter: choice,
    // a missing image is pulled with skiff image's registry client, loaded only then
    puller: {
      pull: async (ref, into) => (await import('./image.js')).registryPuller(command).pull(ref, into),
    },
  });
}

const collect = (value: string, previous: string[] = []) => [...previous, value];

function intArg(flag: string, min: number) {
  return (value: string): number => {
    if (!/^\d+$/.test(value) || Number(value) < min) {
      throw new InvalidArgumentError(
        `${flag}: "${value}" must be a whole number >= ${min}`,
        flag.replace(/^-+/, ''),
      );
    }
    return Number(value);
  };
}

/** `run IMAGE -- CMD` and `exec C -- CMD`: the separator is not part of the command. */
function withoutSeparator(args: string[]): string[] {
  return args[0] === '--' ? args.slice(1) : args;
}

function shortId(id: string): string {
  return id.slice(0, 12);
}

function statusText(info: ContainerInfo, now = Date.now()): string {
  const s = info.state;
  if (s.status === 'running')
    return `Up ${humanDuration(now - Date.parse(s.startedAt ?? info.config.created))}`;
  if (s.status === 'created') return 'Created';
  const ago = s.finishedAt ? ` ${humanDuration(now - Date.parse(s.finishedAt))} ago` : '';
  const why = s.reason === 'OOMKilled' || s.reason === 'ShimDied' ? ` ${s.reason}` : '';
  return `Exited (${s.exitCode ?? '?'})${why}${ago}`;
}

function commandText(argv: string[]): string {
  const text = JSON.stringify(argv.join(' '));
  return text.length > 32 ? `${text.slice(0, 30)}…"` : text;
}

/** Docker's exit codes for a run that never reached the process: 125 runtime, 126 cannot exec, 127 not found. */
function startFailureCode(err: unknown): number {
  if (err instanceof NotFoundError) return 127;
  if (err instanceof PermissionDeniedError) return 126;
  return 125;
}

function writeEntry(text: string, partial: boolean, stream: 'stdout' | 'stderr', time?: string): void {
  const line = `${time ? `${time} ` : ''}${text}${partial ? '' : '\n'}`;
  (stream === 'stdout' ? process.stdout : process.stderr).write(line);
}

interface RunFlags {
  rm?: boolean;
  detach?: boolean;
  interactive?: boolean;
  tty?: boolean;
  name?: string;
  env?: string[];
  workdir?: string;
  user?: string;
  groupAdd?: string[];
  hostname?: string;
  memory?: string;
  cpus?: string;
  pidsLimit?: number;
  readOnly?: boolean;
  securityOpt?: string[];
  capAdd?: string[];
  capDrop?: string[];
  privileged?: boolean;
  network: string;
  volume?: string[];
  label?: string[];
  rootfs?: string;
}

function registerRun(runtime: Command): void {
  runtime
    .command('run')
    .description('create and start a container from IMAGE (or from a directory with --rootfs)')
    .argument('[image]', 'image reference (omit with --rootfs)')
    .argument('[command...]', 'command and arguments (replace the image Cmd)')
    .option('--rm', 'remove the container when it exits')
    .option('-d, --detach', 'run in the background and print the container id')
    .option(
      '-i, --interactive',
      "keep the container's stdin open (and, in the foreground, send this one to it)",
    )
    .option(
      '-t, --tty',
      "give the container a pseudo-terminal of its own (this terminal's size; raw mode while attached)",
    )
    .option('--name <name>', 'container name (unique)')
    .option('-e, --env <KEY=VALUE>', 'set an environment variable (repeatable)', collect)
    .option('-w, --workdir <dir>', 'working directory inside the container')
    .option(
      '-u, --user <name|uid[:group|gid]>',
      "user and group (names from the image's /etc/passwd and /etc/group)",
    )
    .option('--group-add <group>', 'add a supplementary group, name or number (repeatable)', collect)
    .option('--hostname <name>', 'container host name')
    .option('--memory <size>', 'memory limit, e.g. 64Mi')
    .option('--cpus <n>', 'CPU quota in cores, e.g. 0.5')
    .option('--pids-limit <n>', 'maximum number of processes', intArg('--pids-limit', 1))
    .option('--read-only', 'mount the root file system read-only')
    .option(
      '--security-opt <opt>',
      "seccomp=unconfined: no system call filter (default: Docker's profile) (repeatable)",
      collect,
    )
    .option(
      '--cap-add <cap>',
      'add a capability to the default set, e.g. NET_ADMIN, or ALL (repeatable)',
      collect,
    )
    .option(
      '--cap-drop <cap>',
      'drop a capability from the default set, e.g. NET_RAW, or ALL (repeatable)',
      collect,
    )
    .option(
      '--privileged',
      'every capability, no seccomp filter or no_new_privs, /proc unmasked, /sys writable, every device allowed (none added to /dev)',
    )
    .addOption(new Option('--network <mode>', 'none | host | container:NAME').default('none'))
    .option('-v, --volume <HOST:CTR[:ro]>', 'bind mount a host directory (repeatable)', collect)
    .option('-l, --label <KEY=VALUE>', 'set a label on the container (repeatable)', collect)
    .option('--rootfs <dir>', 'run from this directory instead of an image (all arguments are the command)')
    .passThroughOptions()
    .action(async (image: string | undefined, command: string[], flags: RunFlags, cmd: Command) => {
      const rt = flags.rootfs ? await openRuntime(cmd) : (await openImages(cmd)).runtime;
      const argv = withoutSeparator(
        flags.rootfs ? [...(image !== undefined ? [image] : []), ...command] : command,
      );
      const cpus = flags.cpus !== undefined ? Number(flags.cpus) : undefined;
      if (cpus !== undefined && !(cpus > 0 && cpus <= availableParallelism())) {
        throw new InvalidArgumentError(
          `--cpus: "${flags.cpus}" must be above 0 and at most ${availableParallelism()}`,
          'cpus',
        );
      }
      let info: ContainerInfo;
      try {
        info = await rt.run({
          image: flags.rootfs ? undefined : image,
          rootfsDir: flags.rootfs ? resolvePath(flags.rootfs) : undefined,
          command: argv,
          name: flags.name,
          env: flags.env,
          workdir: flags.workdir,
          user: flags.user,
          groupAdd: flags.groupAdd,
          hostname: flags.hostname,
          memoryBytes: flags.memory !== undefined ? parseBytes(flags.memory, 'memory') : undefined,
          cpus,
          pidsLimit: flags.pidsLimit,
          readOnly: flags.readOnly,
          ...(flags.securityOpt ? { seccomp: parseSecurityOpts(flags.securityOpt).seccomp } : {}),
          ...(flags.capAdd ? { capAdd: flags.capAdd } : {}),
          ...(flags.capDrop ? { capDrop: flags.capDrop } : {}),
          ...(flags.privileged ? { privileged: true } : {}),
          network: parseNetwork(flags.network),
          volumes: (flags.volume ?? []).map((v, i) => parseVolume(v, i)),
          labels: parseLabels(flags.label ?? []),
          ...(flags.tty ? { terminal: terminalSize() ?? DEFAULT_TERMINAL } : {}),
          ...(flags.interactive ? { openStdin: true } : {}),
          // a foreground --rm is removed here after its logs are read; only a detached one is
          // left to whichever runtime call next sees it exited
          autoRemove: flags.rm && flags.detach,
          removeIfStartFails: flags.rm,
        });
      } catch (err) {
        process.stderr.write(`error: ${errorMessage(err)}\n`);
        process.exitCode = startFailureCode(err);
        return;
      }
      if (flags.detach) {
        process.stdout.write(`${info.id}\n`);
        return;
      }
      const forward = (signal: NodeJS.Signals) => {
        rt.containers.kill(info.id, signal).catch(() => {});
      };
      const signals: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];
      for (const s of signals) process.on(s, forward);
      let raw: RawTerminal | undefined;
      const input =
        flags.interactive || flags.tty
          ? await rt.containers.openInput(info.id).catch(() => undefined)
          : undefined;
      try {
        // attached: this stdin to the container's (the shim's FIFO), this window's size to its terminal
        if (flags.tty) raw = rawTerminal((size) => input?.resize(size.rows, size.cols));
        if (flags.interactive && input?.stdin) {
          process.stdin.pipe(input.stdin, { end: false });
          process.stdin.once('end', () => input.closeStdin());
        }
        for await (const e of rt.containers.logs(info.id, { follow: true }))
          writeEntry(e.text, e.partial, e.stream);
        const exit = await rt.containers.wait(info.id);
        raw?.restore();
        if (exit.reason === 'ShimDied') process.stderr.write(`error: ${exit.error}\n`);
        process.exitCode = exit.exitCode;
      } finally {
        raw?.restore();
        if (input) {
          process.stdin.unpipe();
          input.close();
          process.stdin.destroy();
        }
        for (const s of signals) process.off(s, forward);
        if (flags.rm) await rt.containers.remove(info.id, { force: true });
      }
    });
}

function registerContainerVerbs(runtime: Command): void {
  runtime
    .command('ps')
    .description('list containers (running ones; -a for all)')
    .option('-a, --all', 'show all containers')
    .option('-q, --quiet', 'only ids')
    .option(
      '-f, --filter <label=KEY=VALUE>',
      'only containers with this label (repeatable: all must match)',
      collect,
    )
    .action(async (flags: { all?: boolean; quiet?: boolean; filter?: string[] }, cmd: Command) => {
      const labels = (flags.filter ?? []).map((filter, i) => {
        if (!filter.startsWith('label=')) {
          throw new InvalidArgumentError(
            `--filter: "${filter}" is not supported; filter by label=KEY=VALUE`,
            `filter[${i}]`,
          );
        }
        return filter.slice('label='.length);
      });
      const rt = await openRuntime(cmd);
      const list = await rt.containers.list({ all: flags.all, labels: parseLabels(labels, 'filter') });
      if (flags.quiet) {
        for (const c of list) process.stdout.write(`${shortId(c.id)}\n`);
        return;
      }
      const now = Date.now();
      const rows = list.map((c) => [
        shortId(c.id),
        c.config.image ?? '',
        commandText(c.config.argv),
        `${humanDuration(now - Date.parse(c.config.created))} ago`,
        statusText(c, now),
        c.name,
      ]);
      process.stdout.write(
        renderTable(['CONTAINER ID', 'IMAGE', 'COMMAND', 'CREATED', 'STATUS', 'NAMES'], rows),
      );
    });

  runtime
    .command('logs')
    .description("print a container's logs")
    .argument('<container>')
    .option('-f, --follow', 'keep printing new lines until the container exits')
    .option('-t, --timestamps', 'prefix each line with its RFC3339Nano time')
    .option('--tail <n>', 'only the last N lines ("all" for every line)', 'all')
    .action(
      async (ref: string, flags: { follow?: boolean; timestamps?: boolean; tail: string }, cmd: Command) => {
        const rt = await openRuntime(cmd);
        const tail = flags.tail === 'all' ? undefined : intArg('--tail', 0)(flags.tail);
        for await (const e of rt.containers.logs(ref, { follow: flags.follow, tail })) {
          writeEntry(e.text, e.partial, e.stream, flags.timestamps ? e.time : undefined);
        }
      },
    );

  runtime
    .command('stop')
    .description('stop containers: SIGTERM, then SIGKILL after the grace period')
    .argument('<containers...>')
    .option('-t, --time <seconds>', 'grace period before SIGKILL', intArg('--time', 0), 10)
    .action(async (refs: string[], flags: { time: number }, cmd: Command) => {
      const rt = await openRuntime(cmd);
      for (const ref of refs) {
        await rt.containers.stop(ref, flags.time);
        process.stdout.write(`${ref}\n`);
      }
    });

  runtime
    .command('kill')
    .description('send a signal to containers (default SIGKILL)')
    .argument('<containers...>')
    .option('-s, --signal <signal>', 'signal name or number', 'KILL')
    .action(async (refs: string[], flags: { signal: string }, cmd: Command) => {
      const rt = await openRuntime(cmd);
      const signo = signalNumber(flags.signal);
      for (const ref of refs) {
        await rt.containers.kill(ref, signo);
        process.stdout.write(`${ref}\n`);
      }
    });

  runtime
    .command('rm')
    .description('remove containers (their writable layer, cgroups and state)')
    .argument('<containers...>')
    .option('-f, --force', 'kill running containers first')
    .action(async (refs: string[], flags: { force?: boolean }, cmd: Command) => {
      const rt = await openRuntime(cmd);
      for (const ref of refs) {
        await rt.containers.remove(ref, { force: flags.force });
        process.stdout.write(`${ref}\n`);
      }
    });

  runtime
    .command('exec')
    .description('run a command inside a running container')
    .argument('<container>')
    .argument('<command...>')
    .option('-i, --interactive', 'keep stdin open')
    .option('-t, --tty', "give the process a pseudo-terminal of the container's own (this terminal's size)")
    .option('-e, --env <KEY=VALUE>', 'set an environment variable (repeatable)', collect)
    .option('-w, --workdir <dir>', 'working directory')
    .option(
      '-u, --user <name|uid[:group|gid]>',
      "user and group (names from the container's /etc/passwd and /etc/group)",
    )
    .passThroughOptions()
    .action(
      async (
        ref: string,
        command: string[],
        flags: { interactive?: boolean; tty?: boolean; env?: string[]; workdir?: string; user?: string },
        cmd: Command,
      ) => {
        const rt = await openRuntime(cmd);
        let exec;
        try {
          // pipes (or a terminal of the container's), relayed by the runtime: the container never
          // holds this terminal or these files
          exec = await rt.execRelayed(
            ref,
            {
              argv: withoutSeparator(command),
              env: flags.env,
              cwd: flags.workdir,
              user: flags.user,
              ...(flags.tty ? { terminal: terminalSize() ?? DEFAULT_TERMINAL } : {}),
            },
            {
              stdin: flags.interactive ? process.stdin : undefined,
              stdout: process.stdout,
              stderr: process.stderr,
            },
          );
        } catch (err) {
          process.stderr.write(`error: ${errorMessage(err)}\n`);
          process.exitCode = startFailureCode(err);
          return;
        }
        // Ctrl-C reaches only this process (the helper has a session of its own): passed on once.
        // With -t -i the terminal is raw: Ctrl-C is a byte the container's terminal turns into
        // SIGINT for its foreground process, as docker's
        const forward = (signal: NodeJS.Signals) => exec.signal(signal);
        const signals: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];
        for (const s of signals) process.on(s, forward);
        const raw =
          flags.tty && flags.interactive
            ? rawTerminal((size) => exec.resize(size.rows, size.cols))
            : undefined;
        try {
          process.exitCode = await exec.exitCode;
        } finally {
          raw?.restore();
          for (const s of signals) process.off(s, forward);
          // stop reading a terminal or pipe the process no longer wants
          if (flags.interactive) process.stdin.destroy();
        }
      },
    );

  runtime
    .command('inspect')
    .description('show containers or images as JSON (containers: config, state, exit, live cgroup stats)')
    .argument('<refs...>', 'container (id, prefix or name) or image')
    .action(async (refs: string[], _flags: unknown, cmd: Command) => {
      const rt = await openRuntime(cmd);
      let images: ImageRuntime | undefined;
      const out = [];
      for (const ref of refs) {
        try {
          out.push(await rt.containers.inspect(ref));
        } catch (err) {
          if (!(err instanceof NotFoundError)) throw err;
          images ??= await openImages(cmd);
          try {
            out.push(await images.images.resolve(ref));
          } catch (imageErr) {
            if (!(imageErr instanceof NotFoundError)) throw imageErr;
            throw new NotFoundError(`inspect ${ref}: no such container or image`);
          }
        }
      }
      process.stdout.write(JSON.stringify(out, null, 2) + '\n');
    });
}

function registerImageVerbs(runtime: Command): void {
  runtime
    .command('import')
    .description('import images from an OCI image layout (dir or tar) or a `docker save` archive')
    .argument('<path>')
    .option('--name <ref>', 'name for images the archive leaves unnamed')
    .action(async (path: string, flags: { name?: string }, cmd: Command) => {
      const { images } = await openImages(cmd);
      const result = await images.import(resolvePath(path), { name: flags.name });
      for (const image of result.images) {
        process.stdout.write(
          `imported ${image.names.join(', ') || image.manifest.digest} (${image.layers} layers)\n`,
        );
      }
      process.stdout.write(
        `wrote ${result.blobsWritten} blobs (${humanSize(result.bytesWritten)}); ${result.blobsSkipped} already present (${humanSize(result.bytesSkipped)})\n`,
      );
    });

  runtime
    .command('images')
    .description('list images (the total counts shared layers once)')
    .action(async (_flags: unknown, cmd: Command) => {
      const { images } = await openImages(cmd);
      const list = await images.list();
      const now = Date.now();
      const rows = list.map((i) => [
        i.repository,
        i.tag || '<none>',
        i.id.replace(/^sha256:/, '').slice(0, 12),
        i.created ? `${humanDuration(now - Date.parse(i.created))} ago` : 'N/A',
        humanSize(i.size),
      ]);
      process.stdout.write(renderTable(['REPOSITORY', 'TAG', 'IMAGE ID', 'CREATED', 'SIZE'], rows));
      const df = await images.df();
      process.stdout.write(
        `total: ${humanSize(df.content.bytes)} in ${df.content.blobs} blobs (shared layers counted once)\n`,
      );
    });

  runtime
    .command('rmi')
    .description('remove images (refused while a container uses one)')
    .argument('<images...>')
    .action(async (refs: string[], _flags: unknown, cmd: Command) => {
      const { images, runtime: rt } = await openImages(cmd);
      const containers = await rt.containers.list({ all: true });
      for (const ref of refs) {
        const image = await images.resolve(ref);
        const user = containers.find((c) => c.config.imageDigest === image.manifestDigest);
        if (user) {
          throw new FailedPreconditionError(
            `remove image ${ref}: container ${user.name} (${shortId(user.id)}) uses it; remove the container first`,
          );
        }
        for (const removed of await images.remove(ref)) process.stdout.write(`Untagged: ${removed}\n`);
      }
    });

  runtime
    .command('save')
    .description('write images to a tar that `docker load` and `skiff runtime import` accept')
    .argument('<images...>')
    .requiredOption('-o, --output <file>', 'output tar file')
    .action(async (refs: string[], flags: { output: string }, cmd: Command) => {
      const { images } = await openImages(cmd);
      await images.save(refs, resolvePath(flags.output));
    });

  runtime
    .command('prune')
    .description('remove exited containers, then content and snapshots nothing uses')
    .option('-a, --all', 'also remove images no container uses')
    .action(async (flags: { all?: boolean }, cmd: Command) => {
      const { images, runtime: rt } = await openImages(cmd);
      let removedContainers = 0;
      for (const c of await rt.containers.list({ all: true })) {
        if (c.state.status === 'exited') {
          await rt.containers.remove(c.id);
          removedContainers++;
        }
      }
      const inUse = (await rt.containers.list({ all: true }))
        .map((c) => c.config.snapshotKey)
        .filter((k): k is string => k !== undefined);
      const result = await images.prune({ snapshotKeysInUse: inUse, removeUnusedImages: flags.all });
      process.stdout.write(
        `removed ${removedContainers} containers, ${result.imagesRemoved.length} images, ${result.blobsRemoved} blobs (${humanSize(result.blobBytesRemoved)}), ${result.snapshotsRemoved} snapshots\n`,
      );
    });

  runtime
    .command('df')
    .description('disk usage of images, content, snapshots and containers')
    .action(async (_flags: unknown, cmd: Command) => {
      const { images, runtime: rt } = await openImages(cmd);
      const df = await images.df();
      const containers = await rt.containers.list({ all: true });
      const running = containers.filter((c) => c.state.status === 'running').length;
      process.stdout.write(
        renderTable(
          ['TYPE', 'TOTAL', 'ACTIVE', 'SIZE', 'RECLAIMABLE'],
          [
            [
              'Images',
              String(df.images.length),
              String(new Set(containers.map((c) => c.config.imageDigest).filter(Boolean)).size),
              humanSize(df.content.bytes),
              '',
            ],
            // removed snapshots still being deleted in the background: freed without a prune
            [
              'Snapshots',
              String(df.snapshots.count),
              '',
              humanSize(df.snapshots.bytes),
              humanSize(df.snapshots.reclaimableBytes),
            ],
            ['Containers', String(containers.length), String(running), '', ''],
          ],
        ),
      );
      process.stdout.write(`total: ${humanSize(df.totalBytes)} (shared layers counted once)\n`);
    });
}

export function registerRuntime(program: Command): void {
  const runtime = program
    .command('runtime')
    .description('the embedded container runtime, on its own (docker-style verbs)')
    .option('--root <dir>', 'runtime state directory', DEFAULT_ROOT)
    .addOption(
      new Option('--snapshotter <name>', 'snapshotter for new containers')
        .choices(['auto', 'overlay', 'copy'])
        .default('auto'),
    )
    .enablePositionalOptions();
  registerRun(runtime);
  registerContainerVerbs(runtime);
  registerImageVerbs(runtime);
  runtime.hook('preAction', () => {
    if (process.platform !== 'linux') throw new FailedPreconditionError('skiff runtime: Linux only');
  });
}
