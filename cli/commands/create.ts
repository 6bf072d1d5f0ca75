/**
 * `skiff create -f FILE` and kubectl's generators: `create namespace|configmap|secret generic|
 * deployment|job`, each with `--dry-run=client|server` and `-o json|yaml|name|jsonpath=…`.
 *
 * The generators (create-generators.ts) make what kubectl's make, so `--dry-run=client -o yaml`
 * prints the same manifest. `create -f` sends every object as a server dry run before creating
 * the first, so a bad or already existing object anywhere means nothing is created.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import type { Command } from 'commander';
import type { ApiClient } from '../../proto/client.js';
import { AlreadyExistsError, InvalidArgumentError, NotFoundError } from '../../proto/errors.js';
import type { KubeObject } from '../../proto/gen/types.js';
import { kindInfoOf, resolveKind } from '../../proto/kinds.js';
import { parseObject } from '../../proto/objects.js';
import type { ObjectJson } from '../../proto/printing/fields.js';
import { manifestDocumentError, manifestFieldError } from '../manifests.js';
import { parseOutput, type OutputSpec } from '../output/format.js';
import { formatWritten, WRITTEN_FORMATS, type Written } from '../output/written.js';
import { checkNamespaces, loadManifests, type PreparedObject } from './apply.js';
import { parseResourceArgs } from './resource-args.js';
import {
  collect,
  DEFAULT_NAMESPACE,
  dryRunOf,
  dryRunSuffix,
  out,
  parseNonNegativeInt,
  registerDryRun,
  withClient,
  write,
  type DryRun,
} from './context.js';
import {
  generateConfigMap,
  generateDeployment,
  generateJob,
  generateJobFromCronJob,
  generateNamespace,
  generateSecret,
  generateServiceFor,
  type ExposeOptions,
  type Generated,
  type SourceReader,
} from './create-generators.js';

interface WriteFlags {
  dryRun?: string | boolean;
  output?: string;
  namespace?: string;
}

const fileSystem: SourceReader = {
  readFile: (path) => readFileSync(path),
  isDirectory: (path) => statSync(path).isDirectory(),
  isFile: (path) => statSync(path).isFile(),
  readDir: (path) => readdirSync(path),
  env: (name) => process.env[name],
};

function outputOf(flags: WriteFlags): OutputSpec | undefined {
  return flags.output === undefined ? undefined : parseOutput(flags.output, WRITTEN_FORMATS);
}

function print(results: Written[], output: OutputSpec | undefined, dryRun: DryRun): void {
  const text = formatWritten(results, output, dryRunSuffix(dryRun));
  if (output?.type === 'jsonpath') write(text);
  else if (text) out(text);
}

/**
 * Creates one generated object. A client dry run prints it as generated (kubectl's shape); otherwise
 * the server's answer is printed.
 */
async function createGenerated(
  command: Command,
  generated: Generated,
  own: WriteFlags,
  action = 'created',
): Promise<void> {
  const flags = optionsOf(command, own);
  const dryRun = dryRunOf(flags.dryRun);
  const output = outputOf(flags);
  const info = kindInfoOf(String(generated.kind));
  const name = String((generated.metadata as Record<string, unknown>).name);
  const written = (object: ObjectJson): Written[] => [{ info, name, action, object }];
  const send = (): KubeObject => {
    const object = parseObject(generated);
    if (info.namespaced) object.metadata.namespace ||= DEFAULT_NAMESPACE;
    return object;
  };
  if (dryRun === 'client') {
    send(); // the same checks of the schema the server would make first
    print(written(generated), output, dryRun);
    return;
  }
  await withClient(command, async (api) => {
    const created = await api.create(send(), { dryRun: dryRun === 'server' }).catch((err: unknown) => {
      throw alreadyExists(err, info.resource, name);
    });
    print(written(created as unknown as ObjectJson), output, dryRun);
  });
}

/**
 * A generator's options with those given to `create` itself: commander hands `-o`, `--dry-run` and
 * `-n` to the parent wherever they stand, since the parent takes them too (for `create -f`).
 */
function optionsOf<T extends object>(command: Command, own: T): T {
  const chain: Command[] = [];
  for (let c: Command | null = command.parent; c; c = c.parent) chain.unshift(c);
  return Object.assign({}, ...chain.map((c) => c.opts()), own) as T;
}

/** kubectl's words for a create that found the object there. */
function alreadyExists(err: unknown, resource: string, name: string, file?: string): unknown {
  if (!(err instanceof AlreadyExistsError)) return err;
  return new AlreadyExistsError(
    `Error from server (AlreadyExists): ${file ? `error when creating "${file}": ` : ''}${resource} "${name}" already exists`,
    { cause: err },
  );
}

/** Every object of the manifests, created once each passed a server dry run. */
async function createFromFiles(api: ApiClient, prepared: PreparedObject[], flags: WriteFlags): Promise<void> {
  const dryRun = dryRunOf(flags.dryRun);
  const output = outputOf(flags);
  const ordered = [
    ...prepared.filter((p) => p.info.kind === 'Namespace'),
    ...prepared.filter((p) => p.info.kind !== 'Namespace'),
  ];
  await checkNamespaces(api, ordered);
  const createdNamespaces = new Set(ordered.filter((p) => p.info.kind === 'Namespace').map((p) => p.name));
  const problems: Error[] = [];
  for (const p of ordered) {
    try {
      await api.create(p.object, { dryRun: true });
    } catch (err) {
      if (err instanceof NotFoundError && p.info.namespaced && createdNamespaces.has(p.namespace)) continue;
      if (err instanceof AlreadyExistsError)
        problems.push(
          manifestDocumentError(p.doc, `${p.info.resource} "${p.name}" already exists`, 'metadata.name'),
        );
      else if (err instanceof InvalidArgumentError) problems.push(manifestFieldError(p.doc, err));
      else throw err;
    }
  }
  if (problems.length === 1) throw problems[0]!;
  if (problems.length > 1) {
    throw new InvalidArgumentError(
      `${problems.length} documents cannot be created, nothing was created:\n${problems.map((p) => `  ${p.message}`).join('\n')}`,
      problems[0] instanceof InvalidArgumentError ? problems[0].field : undefined,
    );
  }
  const results: Written[] = [];
  for (const p of ordered) {
    let object: ObjectJson = p.object as unknown as ObjectJson;
    if (dryRun === 'none' || (dryRun === 'server' && !createdNamespaces.has(p.namespace))) {
      const created = await api.create(p.object, { dryRun: dryRun === 'server' }).catch((err: unknown) => {
        throw err instanceof InvalidArgumentError
          ? manifestFieldError(p.doc, err)
          : alreadyExists(err, p.info.resource, p.name, p.doc.source);
      });
      object = created as unknown as ObjectJson;
    }
    results.push({ info: p.info, name: p.name, action: 'created', object });
    if (output === undefined) print(results.splice(0), output, dryRun);
  }
  print(results, output, dryRun);
}

/** The command after `--` (kubectl's `create deployment NAME --image=I -- CMD ARGS…`). */
function commandAfterDashes(command: Command, name: string, rest: string[]): string[] {
  let root: Command = command;
  while (root.parent) root = root.parent;
  const raw = (root as Command & { rawArgs?: string[] }).rawArgs ?? process.argv;
  if (rest.length > 0 && !raw.includes('--')) {
    throw new InvalidArgumentError(
      `create ${command.name()} ${name} ${rest.join(' ')}: exactly one NAME is required, got ${rest.length + 1}; put a command after --`,
      'name',
    );
  }
  return rest;
}

function dataOptions(command: Command): Command {
  return command
    .option('--from-literal <key=value>', 'a key and its value (repeatable)', collect)
    .option(
      '--from-file <[key=]path>',
      'a file, its name (or key) as the key; a directory: each file in it (repeatable)',
      collect,
    )
    .option('--from-env-file <path>', 'KEY=VALUE lines, one key each (repeatable)', collect);
}

function writeOptions(command: Command): Command {
  return registerDryRun(
    command.option('-o, --output <format>', 'print the object: json, yaml, name or jsonpath=TEMPLATE'),
  );
}

interface DataFlags extends WriteFlags {
  fromLiteral?: string[];
  fromFile?: string[];
  fromEnvFile?: string[];
}

const sourcesOf = (flags: DataFlags) => ({
  literals: flags.fromLiteral ?? [],
  files: flags.fromFile ?? [],
  envFiles: flags.fromEnvFile ?? [],
});

export function registerCreate(program: Command): void {
  const create = program
    .command('create')
    .description(
      'create objects from manifests (-f) or from a generator (namespace, configmap, secret generic, deployment, job)',
    )
    .option('-f, --filename <path...>', 'manifest file, directory of *.yaml/*.yml/*.json, or - for stdin')
    .option('-n, --namespace <ns>', 'namespace for objects that do not name one');
  writeOptions(create).action(async (flags: WriteFlags & { filename?: string[] }, command: Command) => {
    if (!flags.filename) {
      throw new InvalidArgumentError(
        'create: give -f FILE, or a generator: namespace, configmap, secret generic, deployment, job (see `skiff create --help`)',
        'filename',
      );
    }
    const prepared = await loadManifests(flags.filename, flags.namespace);
    outputOf(flags);
    await withClient(command, (api) => createFromFiles(api, prepared, flags));
  });

  writeOptions(
    create.command('namespace').alias('ns').description('create a namespace').argument('<name>', 'its name'),
  ).action((name: string, flags: WriteFlags, command: Command) =>
    createGenerated(command, generateNamespace(name), flags),
  );

  writeOptions(
    dataOptions(
      create
        .command('configmap')
        .alias('cm')
        .description('create a ConfigMap from literals, files, directories or env files')
        .argument('<name>', 'its name')
        .option('-n, --namespace <ns>', 'namespace (default: default)'),
    ),
  ).action((name: string, own: DataFlags, command: Command) => {
    const flags = optionsOf(command, own);
    return createGenerated(
      command,
      generateConfigMap(name, flags.namespace, sourcesOf(flags), fileSystem),
      flags,
    );
  });

  const secret = create.command('secret').description('create a Secret (generic)');
  writeOptions(
    dataOptions(
      secret
        .command('generic')
        .description('create a Secret from literals, files, directories or env files (values base64-encoded)')
        .argument('<name>', 'its name')
        .option('-n, --namespace <ns>', 'namespace (default: default)')
        .option('--type <type>', 'the Secret type, e.g. Opaque'),
    ),
  ).action((name: string, own: DataFlags & { type?: string }, command: Command) => {
    const flags = optionsOf(command, own);
    return createGenerated(
      command,
      generateSecret(name, flags.namespace, flags.type, sourcesOf(flags), fileSystem),
      flags,
    );
  });

  writeOptions(
    create
      .command('deployment')
      .alias('deploy')
      .description('create a Deployment running the given images (labels app=NAME)')
      .argument('<name>', 'its name')
      .argument('[command...]', 'after --: the command of the (single) container')
      .option('-n, --namespace <ns>', 'namespace (default: default)')
      .option('--image <image>', 'a container image (repeatable: one container each)', collect)
      .option('-r, --replicas <n>', 'number of replicas', parseNonNegativeInt('--replicas'), 1)
      .option('--port <port>', 'the port the container exposes', parseNonNegativeInt('--port')),
  ).action(
    (
      name: string,
      rest: string[],
      own: WriteFlags & { image?: string[]; replicas: number; port?: number },
      command: Command,
    ) => {
      const flags = optionsOf(command, own);
      return createGenerated(
        command,
        generateDeployment(name, flags.namespace, {
          images: flags.image ?? [],
          replicas: flags.replicas,
          port: flags.port,
          command: commandAfterDashes(command, name, rest),
        }),
        flags,
      );
    },
  );

  writeOptions(
    create
      .command('job')
      .description('create a Job running an image once, or from a CronJob (--from=cronjob/NAME)')
      .argument('<name>', 'its name')
      .argument('[command...]', 'after --: the command of the container')
      .option('-n, --namespace <ns>', 'namespace (default: default)')
      .option('--image <image>', 'the container image')
      .option('--from <cronjob/NAME>', 'a CronJob whose job template to use (cronjob/NAME)'),
  ).action(
    async (
      name: string,
      rest: string[],
      own: WriteFlags & { image?: string; from?: string },
      command: Command,
    ) => {
      const flags = optionsOf(command, own);
      const args = commandAfterDashes(command, name, rest);
      if (flags.from === undefined) {
        if (!flags.image)
          throw new InvalidArgumentError('create job: give --image or --from=cronjob/NAME', 'image');
        await createGenerated(
          command,
          generateJob(name, flags.namespace, { image: flags.image, command: args }),
          flags,
        );
        return;
      }
      if (flags.image || args.length)
        throw new InvalidArgumentError(
          'create job: --from cannot be combined with --image or a command',
          'from',
        );
      const [kind, source] = flags.from.split('/');
      if (!kind || !source || resolveKind(kind).kind !== 'CronJob')
        throw new InvalidArgumentError(`create job --from ${flags.from}: expected cronjob/NAME`, 'from');
      const cronJob = await withClient(command, (api) =>
        api.get('CronJob', flags.namespace || DEFAULT_NAMESPACE, source),
      );
      await createGenerated(
        command,
        generateJobFromCronJob(name, flags.namespace, cronJob as unknown as Generated),
        flags,
      );
    },
  );
}

/**
 * `skiff expose KIND NAME | KIND/NAME`: a Service for a pod, Service, Deployment, ReplicaSet or
 * DaemonSet, as kubectl's expose makes it (generateServiceFor).
 */
export function registerExpose(program: Command): void {
  writeOptions(
    program
      .command('expose')
      .description('make a Service for a pod, service, deployment, replicaset or daemonset')
      .argument('<resource...>', 'KIND NAME, or KIND/NAME')
      .option('-n, --namespace <ns>', 'namespace (default: default)')
      .option(
        '--port <port>',
        'the port the Service serves on (default: the ports its containers declare)',
        parseNonNegativeInt('--port'),
      )
      .option('--target-port <port>', 'the port (number or name) on the pods (default: --port)')
      .option('--protocol <protocol>', 'TCP, UDP or SCTP (default TCP)')
      .option('--type <type>', 'ClusterIP (default), NodePort, LoadBalancer')
      .option('--name <name>', "the Service's name (default: the object's)")
      .option('--port-name <name>', "the Service port's name")
      .option('--cluster-ip <ip>', 'the ClusterIP to ask for, or None for a headless Service')
      .option('--selector <k=v,...>', "the pods to send to, instead of the object's own selector"),
  ).action(
    async (
      resource: string[],
      own: WriteFlags & Omit<ExposeOptions, 'clusterIP'> & { clusterIp?: string },
      command: Command,
    ) => {
      const flags = optionsOf(command, own);
      const { groups } = parseResourceArgs(resource, 'expose');
      const target = groups.length === 1 && groups[0]!.names.length === 1 ? groups[0]! : undefined;
      if (target === undefined)
        throw new InvalidArgumentError(
          'expose: give one object: KIND NAME, or KIND/NAME (e.g. deployment/web)',
          'name',
        );
      const namespace = flags.namespace ?? DEFAULT_NAMESPACE;
      const object = await withClient(command, (api) =>
        api.get(target.info.kind, target.info.namespaced ? namespace : '', target.names[0]!),
      );
      const { clusterIp, ...rest } = flags;
      await createGenerated(
        command,
        generateServiceFor(object, { ...rest, ...(clusterIp !== undefined ? { clusterIP: clusterIp } : {}) }),
        flags,
        'exposed',
      );
    },
  );
}
