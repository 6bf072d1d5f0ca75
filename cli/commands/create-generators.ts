/**
 * What `skiff create namespace|configmap|secret generic|deployment|job` makes: the objects kubectl's
 * generators make, field for field and in the same order (so `--dry-run=client -o yaml|json` prints
 * what kubectl prints, `creationTimestamp: null` and empty structs included). Pure, but for the
 * files and the environment read through `SourceReader`.
 */
import { basename, join } from 'node:path';
import { InvalidArgumentError } from '../../proto/errors.js';
import type { KubeObject } from '../../proto/gen/types.js';

export type Generated = Record<string, unknown>;

/** The file system and environment the data sources read; tests pass their own. */
export interface SourceReader {
  /** A file's bytes; throws ENOENT etc. */
  readFile(path: string): Buffer;
  isDirectory(path: string): boolean;
  /** Names of the entries in a directory. */
  readDir(path: string): string[];
  isFile(path: string): boolean;
  env(name: string): string | undefined;
}

function metadata(name: string, namespace: string | undefined, extra: Generated = {}): Generated {
  return { name, ...(namespace ? { namespace } : {}), creationTimestamp: null, ...extra };
}

export function generateNamespace(name: string): Generated {
  return { kind: 'Namespace', apiVersion: 'v1', metadata: metadata(name, undefined), spec: {}, status: {} };
}

export interface DataSources {
  literals: string[];
  files: string[];
  envFiles: string[];
}

const CONFIG_KEY = /^[-._a-zA-Z0-9]+$/;
const ENV_NAME = /^[-._a-zA-Z][-._a-zA-Z0-9]*$/;

function validateKey(key: string, kind: 'ConfigMap' | 'Secret'): void {
  if (key.length > 253 || !CONFIG_KEY.test(key) || key === '.' || key === '..') {
    throw new InvalidArgumentError(
      `"${key}" is not a valid key name for a ${kind}: a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name', 'KEY_NAME' or 'key-name')`,
      'key',
    );
  }
}

/** `--from-literal key=value`: the value may hold `=`, and may be empty. */
function parseLiteral(source: string): [string, string] {
  const eq = source.indexOf('=');
  if (eq <= 0) {
    throw new InvalidArgumentError(
      `--from-literal ${source}: invalid literal source, expected key=value`,
      'fromLiteral',
    );
  }
  return [source.slice(0, eq), source.slice(eq + 1)];
}

/** The entries of `--from-file [key=]path` (a directory: each regular file in it, by its name). */
function fileEntries(source: string, reader: SourceReader): [string, Buffer][] {
  const eq = source.indexOf('=');
  const key = eq >= 0 ? source.slice(0, eq) : undefined;
  const path = eq >= 0 ? source.slice(eq + 1) : source;
  if (key === '' || path === '')
    throw new InvalidArgumentError(`--from-file ${source}: expected [key=]path`, 'fromFile');
  const read = (file: string): Buffer => {
    try {
      return reader.readFile(file);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      const reason =
        code === 'ENOENT'
          ? 'no such file or directory'
          : code === 'EACCES'
            ? 'permission denied'
            : String(err);
      throw new InvalidArgumentError(`--from-file ${source}: error reading ${file}: ${reason}`, 'fromFile', {
        cause: err,
      });
    }
  };
  let directory = false;
  try {
    directory = reader.isDirectory(path);
  } catch {
    // read() below says what is wrong
  }
  if (!directory) return [[key ?? basename(path), read(path)]];
  if (key !== undefined)
    throw new InvalidArgumentError(
      `--from-file ${source}: cannot give a key name for a directory path`,
      'fromFile',
    );
  return reader
    .readDir(path)
    .sort()
    .filter((name) => CONFIG_KEY.test(name) && reader.isFile(join(path, name)))
    .map((name) => [name, read(join(path, name))]);
}

/** `--from-env-file`: KEY=VALUE lines; `#` comments and blank lines skipped; a bare KEY takes the environment's value. */
function envFileEntries(path: string, reader: SourceReader): [string, string][] {
  let text: string;
  try {
    text = reader.readFile(path).toString('utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new InvalidArgumentError(
      `--from-env-file ${path}: error reading ${path}: ${code === 'ENOENT' ? 'no such file or directory' : String(err)}`,
      'fromEnvFile',
      { cause: err },
    );
  }
  const entries: [string, string][] = [];
  text.split('\n').forEach((raw, i) => {
    const line = raw.replace(/\r$/, '').replace(/^\s+/, '');
    if (line === '' || line.startsWith('#')) return;
    const eq = line.indexOf('=');
    const key = eq >= 0 ? line.slice(0, eq) : line;
    if (!ENV_NAME.test(key)) {
      throw new InvalidArgumentError(
        `--from-env-file ${path}: line ${i + 1}: "${key}" is not a valid key name: a valid environment variable name must consist of alphabetic characters, digits, '_', '-', or '.', and must not start with a digit`,
        'fromEnvFile',
      );
    }
    if (eq >= 0) entries.push([key, line.slice(eq + 1)]);
    else {
      const value = reader.env(key);
      if (value !== undefined) entries.push([key, value]);
    }
  });
  return entries;
}

/** Every key and value the sources give, each key once, literals first as kubectl adds them. */
function collectData(
  kind: 'ConfigMap' | 'Secret',
  name: string,
  sources: DataSources,
  reader: SourceReader,
): [string, Buffer][] {
  const all: [string, Buffer][] = [
    ...sources.files.flatMap((s) => fileEntries(s, reader)),
    ...sources.literals.map((s) => {
      const [k, v] = parseLiteral(s);
      return [k, Buffer.from(v, 'utf8')] as [string, Buffer];
    }),
    ...sources.envFiles.flatMap((p) =>
      envFileEntries(p, reader).map(([k, v]) => [k, Buffer.from(v, 'utf8')] as [string, Buffer]),
    ),
  ];
  const seen = new Set<string>();
  for (const [key] of all) {
    validateKey(key, kind);
    if (seen.has(key)) {
      throw new InvalidArgumentError(
        `cannot add key "${key}", another key by that name already exists in ${kind === 'ConfigMap' ? 'Data' : 'data'} for ${kind} "${name}"`,
        'key',
      );
    }
    seen.add(key);
  }
  return all;
}

function isUtf8(bytes: Buffer): boolean {
  try {
    new TextDecoder('utf-8', { fatal: true }).decode(bytes);
    return true;
  } catch {
    return false;
  }
}

/** Sorted, as Go's map prints in JSON. */
function sortedRecord(entries: [string, string][]): Record<string, string> {
  return Object.fromEntries([...entries].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

export function generateConfigMap(
  name: string,
  namespace: string | undefined,
  sources: DataSources,
  reader: SourceReader,
): Generated {
  const entries = collectData('ConfigMap', name, sources, reader);
  const data = entries
    .filter(([, v]) => isUtf8(v))
    .map(([k, v]) => [k, v.toString('utf8')] as [string, string]);
  const binary = entries
    .filter(([, v]) => !isUtf8(v))
    .map(([k, v]) => [k, v.toString('base64')] as [string, string]);
  return {
    kind: 'ConfigMap',
    apiVersion: 'v1',
    metadata: metadata(name, namespace),
    ...(data.length ? { data: sortedRecord(data) } : {}),
    ...(binary.length ? { binaryData: sortedRecord(binary) } : {}),
  };
}

export function generateSecret(
  name: string,
  namespace: string | undefined,
  type: string | undefined,
  sources: DataSources,
  reader: SourceReader,
): Generated {
  const entries = collectData('Secret', name, sources, reader);
  return {
    kind: 'Secret',
    apiVersion: 'v1',
    metadata: metadata(name, namespace),
    ...(entries.length ? { data: sortedRecord(entries.map(([k, v]) => [k, v.toString('base64')])) } : {}),
    ...(type ? { type } : {}),
  };
}

/** kubectl names a container after its image: the last path segment, before any tag or digest. */
export function containerNameFor(image: string): string {
  const last = image.split('/').pop() ?? image;
  return last.replace(/@.*$/, '').replace(/:.*$/, '');
}

export interface DeploymentOptions {
  images: string[];
  replicas: number;
  port?: number;
  command: string[];
}

export function generateDeployment(
  name: string,
  namespace: string | undefined,
  options: DeploymentOptions,
): Generated {
  if (options.images.length === 0)
    throw new InvalidArgumentError('create deployment: --image is required', 'image');
  if (options.images.length > 1 && options.command.length > 0)
    throw new InvalidArgumentError('create deployment: cannot give several --image and a command', 'image');
  const labels = { app: name };
  const containers = options.images.map((image) => ({
    name: containerNameFor(image),
    image,
    ...(options.command.length ? { command: options.command } : {}),
    ...(options.port !== undefined ? { ports: [{ containerPort: options.port }] } : {}),
    resources: {},
  }));
  return {
    kind: 'Deployment',
    apiVersion: 'apps/v1',
    metadata: metadata(name, namespace, { labels }),
    spec: {
      replicas: options.replicas,
      selector: { matchLabels: labels },
      template: { metadata: { creationTimestamp: null, labels }, spec: { containers } },
      strategy: {},
    },
    status: {},
  };
}

export function generateJob(
  name: string,
  namespace: string | undefined,
  options: { image: string; command: string[] },
): Generated {
  return {
    kind: 'Job',
    apiVersion: 'batch/v1',
    metadata: metadata(name, namespace),
    spec: {
      template: {
        metadata: { creationTimestamp: null },
        spec: {
          containers: [
            {
              name,
              image: options.image,
              ...(options.command.length ? { command: options.command } : {}),
              resources: {},
            },
          ],
          restartPolicy: 'Never',
        },
      },
    },
    status: {},
  };
}

/**
 * A Job from a CronJob's template (`create job NAME --from=cronjob/CJ`), as kubectl makes it: the
 * template's labels and annotations, `cronjob.kubernetes.io/instantiate: manual`, and the CronJob
 * as its controlling owner.
 */
export function generateJobFromCronJob(
  name: string,
  namespace: string | undefined,
  cronJob: Generated,
): Generated {
  const cjMeta = (cronJob.metadata ?? {}) as Record<string, unknown>;
  const jobTemplate = ((cronJob.spec as Record<string, unknown> | undefined)?.jobTemplate ?? {}) as Record<
    string,
    unknown
  >;
  const templateMeta = (jobTemplate.metadata ?? {}) as Record<string, unknown>;
  const annotations = {
    'cronjob.kubernetes.io/instantiate': 'manual',
    ...((templateMeta.annotations as Record<string, string> | undefined) ?? {}),
  };
  return {
    kind: 'Job',
    apiVersion: 'batch/v1',
    metadata: metadata(name, namespace, {
      ...(templateMeta.labels ? { labels: templateMeta.labels } : {}),
      annotations,
      ownerReferences: [
        {
          apiVersion: 'batch/v1',
          kind: 'CronJob',
          name: cjMeta.name,
          uid: cjMeta.uid,
          controller: true,
          blockOwnerDeletion: true,
        },
      ],
    }),
    spec: structuredClone(jobTemplate.spec ?? {}),
    status: {},
  };
}

export interface ExposeOptions {
  /** The Service's name; default the exposed object's. */
  name?: string;
  port?: number;
  targetPort?: string;
  protocol?: string;
  type?: string;
  clusterIP?: string;
  /** `k=v,k2=v2`: instead of the object's own selector. */
  selector?: string;
  portName?: string;
}

const EXPOSABLE = [
  'Pod',
  'Service',
  'Deployment',
  'ReplicaSet',
  'DaemonSet',
  'StatefulSet',
  'ReplicationController',
];

/**
 * The Service `skiff expose` makes for an object, as kubectl's generator does: the object's
 * selector (a pod's labels), its labels, and the port given, or else every port its containers
 * declare (named port-1, port-2, … when several).
 */
export function generateServiceFor(target: KubeObject, options: ExposeOptions): Generated {
  const kind = target.kind;
  const what = `expose ${kind.toLowerCase()}/${target.metadata.name}`;
  if (!EXPOSABLE.includes(kind))
    throw new InvalidArgumentError(
      `${what}: cannot expose a ${kind}; expose a pod, service, deployment, replicaset or daemonset`,
      'kind',
    );
  const spec = (target as { spec?: Record<string, unknown> }).spec ?? {};
  const selector =
    options.selector !== undefined
      ? parseSelectorPairs(options.selector, what)
      : selectorOf(target, spec, what);
  const podSpec =
    kind === 'Pod'
      ? spec
      : ((spec['template'] as { spec?: Record<string, unknown> } | undefined)?.spec ?? {});
  let ports: Record<string, unknown>[];
  if (options.port !== undefined) {
    const targetPort =
      options.targetPort === undefined
        ? options.port
        : /^\d+$/.test(options.targetPort)
          ? Number(options.targetPort)
          : options.targetPort;
    ports = [
      {
        ...(options.portName ? { name: options.portName } : {}),
        port: options.port,
        protocol: options.protocol ?? 'TCP',
        targetPort,
      },
    ];
  } else if (kind === 'Service') {
    ports = ((spec['ports'] as Record<string, unknown>[] | undefined) ?? []).map((p) => ({
      ...p,
      nodePort: undefined,
    }));
  } else {
    const declared = (
      (podSpec['containers'] as { ports?: { containerPort: number; protocol?: string }[] }[] | undefined) ??
      []
    ).flatMap((c) => c.ports ?? []);
    ports = declared.map((p, i) => ({
      ...(declared.length > 1 ? { name: `port-${i + 1}` } : {}),
      port: p.containerPort,
      protocol: options.protocol ?? p.protocol ?? 'TCP',
      targetPort: p.containerPort,
    }));
  }
  if (ports.length === 0)
    throw new InvalidArgumentError(
      `${what}: couldn't find port via --port flag or introspection (its containers declare none); give --port`,
      'port',
    );
  const labels = target.metadata.labels;
  return {
    kind: 'Service',
    apiVersion: 'v1',
    metadata: {
      name: options.name ?? target.metadata.name,
      ...(target.metadata.namespace ? { namespace: target.metadata.namespace } : {}),
      ...(labels && Object.keys(labels).length > 0 ? { labels } : {}),
    },
    spec: {
      ports,
      selector,
      ...(options.type ? { type: options.type } : {}),
      ...(options.clusterIP ? { clusterIP: options.clusterIP } : {}),
    },
    status: { loadBalancer: {} },
  };
}

function selectorOf(target: KubeObject, spec: Record<string, unknown>, what: string): Record<string, string> {
  let selector: Record<string, string> | undefined;
  if (target.kind === 'Pod') selector = target.metadata.labels;
  else if (target.kind === 'Service') selector = spec['selector'] as Record<string, string> | undefined;
  else {
    const labelSelector = spec['selector'] as
      { matchLabels?: Record<string, string>; matchExpressions?: unknown[] } | undefined;
    if ((labelSelector?.matchExpressions ?? []).length > 0)
      throw new InvalidArgumentError(
        `${what}: its selector has matchExpressions, which a Service cannot state; give --selector`,
        'selector',
      );
    selector = labelSelector?.matchLabels;
  }
  if (selector === undefined || Object.keys(selector).length === 0)
    throw new InvalidArgumentError(
      `${what}: couldn't retrieve selectors via --selector flag or introspection`,
      'selector',
    );
  return selector;
}

function parseSelectorPairs(text: string, what: string): Record<string, string> {
  const selector: Record<string, string> = {};
  for (const pair of text.split(',')) {
    const eq = pair.indexOf('=');
    if (eq <= 0)
      throw new InvalidArgumentError(
        `${what}: --selector "${text}" must be key=value pairs separated by commas`,
        'selector',
      );
    selector[pair.slice(0, eq).trim()] = pair.slice(eq + 1).trim();
  }
  return selector;
}
