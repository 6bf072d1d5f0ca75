/**
 * `skiff apply -f FILE|DIR|- [-f …] [--dry-run=client|server] [-o FORMAT]`: create or update every
 * object in the manifests, computed against the last-applied configuration (cli/apply.ts), or with
 * --dry-run only say what would happen (apply-printing.ts). Every document is read and checked
 * against the schema, then sent to the server as a dry run (the server's defaulting, validation
 * and admission, whatever its version) before the first write, so a bad document anywhere means
 * nothing is written.
 */
import type { Command } from 'commander';
import type { ApiClient, WriteOptions } from '../../proto/client.js';
import {
  AlreadyExistsError,
  ConflictError,
  FailedPreconditionError,
  InvalidArgumentError,
  NotFoundError,
} from '../../proto/errors.js';
import type { KubeObject } from '../../proto/gen/types.js';
import { kindInfoOf, type KindInfo } from '../../proto/kinds.js';
import { encodeObjectWithin, MAX_OBJECT_BYTES, parseObject } from '../../proto/objects.js';
import {
  deepEqual,
  LAST_APPLIED_ANNOTATION,
  resourceName,
  threeWayMerge,
  withLastApplied,
  type ApplyAction,
} from '../apply.js';
import {
  manifestDocumentError,
  manifestFieldError,
  parseManifestSource,
  readManifestSources,
  type ManifestDocument,
} from '../manifests.js';
import { parseOutput } from '../output/format.js';
import { WRITTEN_FORMATS } from '../output/written.js';
import { applyPrinting } from './apply-printing.js';
import { DEFAULT_NAMESPACE, dryRunOf, lineBatcher, registerDryRun, withClient } from './context.js';

/** A document checked and ready to write. */
export interface PreparedObject {
  doc: ManifestDocument;
  info: KindInfo;
  object: KubeObject;
  /** `object` with its last-applied copy, as a create sends it and a merge targets it (read only). */
  withLastApplied: Record<string, unknown>;
  namespace: string;
  name: string;
}

/**
 * Encoded protobuf is at most this many times the UTF-8 bytes of the object's JSON: a field's tag
 * and length take no more bytes than its JSON key, quotes and separators, and payloads are the same
 * UTF-8 or shorter (base64 bytes, varints); the worst case, a packed negative int64 (`-1,`: 3 bytes
 * of JSON, 10 of varint), is under 4. Below MAX_OBJECT_BYTES / this, encoding to measure is skipped.
 */
const ENCODED_PER_JSON_BYTE = 8;

/**
 * Bounds the re-read-and-retry loop when others keep writing the same object: every round of
 * contenders lets one through, so twenty applies of one object at once all land well within it.
 */
const MAX_APPLY_ATTEMPTS = 40;

/** A short random pause before trying again, so contenders that lost together do not collide again. */
function backOff(attempt: number): Promise<void> {
  const ms = Math.random() * Math.min(250, 10 * attempt);
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Reads every source and prepares every document; throws one error listing every bad document. */
export async function loadManifests(
  paths: string[],
  namespaceFlag: string | undefined,
): Promise<PreparedObject[]> {
  const sources = await readManifestSources(paths);
  const prepared: PreparedObject[] = [];
  const problems: InvalidArgumentError[] = [];
  for (const source of sources) {
    let docs: ManifestDocument[];
    try {
      docs = parseManifestSource(source);
    } catch (err) {
      if (!(err instanceof InvalidArgumentError)) throw err;
      problems.push(err);
      continue;
    }
    for (const doc of docs) {
      try {
        prepared.push(prepareDocument(doc, namespaceFlag));
      } catch (err) {
        if (!(err instanceof InvalidArgumentError)) throw err;
        problems.push(err);
      }
    }
  }
  if (problems.length === 1) throw problems[0]!;
  if (problems.length > 1) {
    throw new InvalidArgumentError(
      `${problems.length} invalid documents, nothing was applied:\n${problems.map((p) => `  ${p.message}`).join('\n')}`,
      problems[0]!.field,
    );
  }
  if (prepared.length === 0)
    throw new InvalidArgumentError(`read manifests ${paths.join(', ')}: no objects found`, 'filename');
  const seen = new Map<string, PreparedObject>();
  for (const p of prepared) {
    const key = `${p.info.kind}/${p.namespace}/${p.name}`;
    const first = seen.get(key);
    if (first) {
      throw manifestDocumentError(
        p.doc,
        `${resourceName(p.info.kind, p.info.group, p.name)} is also defined in ${first.doc.source} document ${first.doc.documentIndex}`,
        'metadata.name',
      );
    }
    seen.set(key, p);
  }
  return prepared;
}

/**
 * Reads one document strictly against the schema (unknown fields, types, required fields:
 * proto/objects.ts) and settles its namespace: the manifest's, else `-n`, else `default`; the two
 * may not disagree. The rules of the kind (names, quantities, ports…) are the server's: see dryRunAll.
 */
export function prepareDocument(doc: ManifestDocument, namespaceFlag: string | undefined): PreparedObject {
  let object: KubeObject;
  try {
    object = parseObject(doc.object);
  } catch (err) {
    if (err instanceof InvalidArgumentError) throw manifestFieldError(doc, err);
    throw err;
  }
  const info = kindInfoOf(object.kind);
  const metadata = object.metadata;
  if (!metadata.name) {
    throw manifestDocumentError(
      doc,
      `${info.kind} needs a name to be applied (generateName cannot be applied)`,
      'metadata.name',
    );
  }
  let namespace = '';
  if (info.namespaced) {
    if (metadata.namespace && namespaceFlag && metadata.namespace !== namespaceFlag) {
      throw manifestDocumentError(
        doc,
        `namespace "${metadata.namespace}" does not match -n ${namespaceFlag}: pass -n ${metadata.namespace} or drop one of them`,
        'metadata.namespace',
      );
    }
    namespace = metadata.namespace || namespaceFlag || DEFAULT_NAMESPACE;
    metadata.namespace = namespace;
  } else if (metadata.namespace) {
    delete metadata.namespace;
  }
  // What the create sends (with the manifest's copy in the last-applied annotation) must fit etcd's
  // request limit; said here, the error can blame the manifest's largest field. Encoded as it is:
  // `object` is already in parseObject's shape, and reading it again only to encode it cost a
  // third of this function (~30 ms for 2,000 ConfigMaps) for the same bytes.
  const sent = withLastApplied(object as unknown as Record<string, unknown>);
  // Far below the limit by its JSON, an object cannot be over it encoded: encoding only to measure
  // was a third of this function's time (~50 ms for 2,000 ConfigMaps).
  if (Buffer.byteLength(JSON.stringify(sent)) * ENCODED_PER_JSON_BYTE >= MAX_OBJECT_BYTES) {
    try {
      const copyBytes =
        (sent as unknown as KubeObject).metadata.annotations?.[LAST_APPLIED_ANNOTATION]?.length ?? 0;
      encodeObjectWithin(
        sent as unknown as KubeObject,
        `apply ${info.kind} ${metadata.name}`,
        MAX_OBJECT_BYTES,
        object,
        `and apply adds a copy of the whole manifest (${copyBytes} bytes) in the ${LAST_APPLIED_ANNOTATION} annotation`,
      );
    } catch (err) {
      if (err instanceof InvalidArgumentError) throw manifestFieldError(doc, err);
      throw err;
    }
  }
  return { doc, info, object, withLastApplied: sent, namespace, name: metadata.name };
}

/** What applying one object did, and the object: as stored, as the server's dry run answered, or as planned. */
export interface Applied {
  action: ApplyAction;
  object: KubeObject;
}

/** What applying an object over its live state sends: nothing, or a create or an update. */
export type PlannedApply =
  | { action: 'unchanged'; object: KubeObject }
  | { action: 'created'; verb: 'create'; object: KubeObject }
  | { action: 'configured'; verb: 'update'; object: KubeObject };

/**
 * What applying `p` over `live` (null: absent) sends; pure. A create sends p.withLastApplied as
 * it is (the client only reads it), an update the three-way merge in the shape the server returns.
 */
export function planApply(p: PreparedObject, live: KubeObject | null): PlannedApply {
  if (live === null) {
    return { action: 'created', verb: 'create', object: p.withLastApplied as unknown as KubeObject };
  }
  const { merged, changed } = threeWayMerge(
    live as unknown as Record<string, unknown>,
    p.object as unknown as Record<string, unknown>,
    p.withLastApplied,
  );
  // Equal to live as it is: unchanged, without reading it into the normalised shape (live is
  // already in it, as the server returns it).
  if (!changed) return { action: 'unchanged', object: live };
  // Compare in the normalised shape the server returns, so defaults and zero values do not
  // make every re-apply look like a change.
  const next = parseObject(merged);
  if (deepEqual(next, live)) return { action: 'unchanged', object: live };
  return { action: 'configured', verb: 'update', object: next };
}

/**
 * Whether a write of `p` failed because someone wrote the object since it was read (a Conflict,
 * unless the manifest pins a resourceVersion) or created it (AlreadyExists): read it again and retry.
 */
function raced(p: PreparedObject, err: unknown): boolean {
  return (
    (err instanceof ConflictError && !p.object.metadata.resourceVersion) || err instanceof AlreadyExistsError
  );
}

/** A failed write of `p` as the error to show: one the manifest causes names its document. */
function applyError(p: PreparedObject, err: unknown): unknown {
  // A manifest that pins a resourceVersion conflicts for good once it is stale: say so at once.
  if (err instanceof ConflictError && p.object.metadata.resourceVersion) {
    return manifestDocumentError(
      p.doc,
      `${err.message}; the manifest sets metadata.resourceVersion ${p.object.metadata.resourceVersion}: remove it to apply over whatever is stored`,
      'metadata.resourceVersion',
    );
  }
  if (err instanceof InvalidArgumentError) return manifestFieldError(p.doc, err);
  return err;
}

/**
 * Creates or updates one object. `known` is its live state when the caller has read it (null: it
 * does not exist); otherwise it is read here. `plan` only reads and says what would be sent (a
 * client dry run). A Conflict (someone wrote in between) or an AlreadyExists (someone created it
 * in between) reads again and retries, a bounded number of times.
 */
export async function applyObject(
  api: ApiClient,
  p: PreparedObject,
  write: WriteOptions & { plan?: boolean } = {},
  known?: KubeObject | null,
): Promise<Applied> {
  const { plan = false, ...options } = write;
  for (let attempt = 1; ; attempt++) {
    try {
      let live: KubeObject | null;
      if (attempt === 1 && known !== undefined) live = known;
      else {
        try {
          live = await api.get(p.info.kind, p.namespace, p.name);
        } catch (err) {
          if (!(err instanceof NotFoundError)) throw err;
          live = null;
        }
      }
      const planned = planApply(p, live);
      if (planned.action === 'unchanged') return planned;
      if (planned.verb === 'create') {
        return {
          action: 'created',
          object: plan ? parseObject(planned.object) : await api.create(planned.object, options),
        };
      }
      return {
        action: 'configured',
        object: plan ? planned.object : await api.update(planned.object, options),
      };
    } catch (err) {
      if (raced(p, err) && attempt < MAX_APPLY_ATTEMPTS) {
        await backOff(attempt);
        continue;
      }
      throw applyError(p, err);
    }
  }
}

/** Calls in flight at once while applying many objects. */
const APPLY_CONCURRENCY = 16;
/** From this many objects of one kind in one namespace, one list reads them instead of a get each. */
const LIST_FROM = 4;

/**
 * `run` over `items`, `limit` at a time; `done` sees each result in the items' order, as soon as
 * every earlier one is done too (so output streams in document order).
 */
async function inOrder<T, R>(
  items: readonly T[],
  limit: number,
  run: (item: T) => Promise<R>,
  done: (item: T, result: R) => void = () => {},
): Promise<R[]> {
  const results: R[] = new Array(items.length);
  const finished: boolean[] = new Array(items.length).fill(false);
  let next = 0;
  let reported = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, items.length) }, async () => {
      for (let i = next++; i < items.length; i = next++) {
        results[i] = await run(items[i]!);
        finished[i] = true;
        while (reported < items.length && finished[reported]) {
          done(items[reported]!, results[reported]!);
          reported++;
        }
      }
    }),
  );
  return results;
}

/**
 * The live state of every object to apply (null: absent), read with one list per kind and namespace
 * where that holds several of them, else with a get each.
 */
export async function readLive(
  api: ApiClient,
  prepared: readonly PreparedObject[],
): Promise<Map<PreparedObject, KubeObject | null>> {
  const live = new Map<PreparedObject, KubeObject | null>();
  const groups = new Map<string, PreparedObject[]>();
  for (const p of prepared) {
    const key = `${p.info.kind}\0${p.namespace}`;
    const group = groups.get(key);
    // Appended in place: copying the group for each object was quadratic (~16 ms for 2,000).
    if (group) group.push(p);
    else groups.set(key, [p]);
  }
  await inOrder([...groups.values()], APPLY_CONCURRENCY, async (group) => {
    const first = group[0]!;
    if (group.length >= LIST_FROM) {
      const listed = await api.list(first.info.kind, { namespace: first.namespace });
      const byName = new Map(listed.items.map((item) => [item.metadata.name, item]));
      for (const p of group) live.set(p, byName.get(p.name) ?? null);
      return;
    }
    for (const p of group) {
      try {
        live.set(p, await api.get(p.info.kind, p.namespace, p.name));
      } catch (err) {
        if (!(err instanceof NotFoundError)) throw err;
        live.set(p, null);
      }
    }
  });
  return live;
}

/**
 * Fails, before anything is written, when an object's namespace neither exists nor is created by
 * the same apply: otherwise the objects before it would be written and the rest not.
 */
export async function checkNamespaces(api: ApiClient, prepared: PreparedObject[]): Promise<void> {
  const created = new Set(prepared.filter((p) => p.info.kind === 'Namespace').map((p) => p.name));
  const checked = new Set<string>();
  for (const p of prepared) {
    if (!p.info.namespaced || created.has(p.namespace) || checked.has(p.namespace)) continue;
    try {
      await api.get('Namespace', '', p.namespace);
    } catch (err) {
      if (!(err instanceof NotFoundError)) throw err;
      throw manifestDocumentError(
        p.doc,
        `namespace "${p.namespace}" does not exist: create it first (or add a Namespace document); nothing was applied`,
        'metadata.namespace',
      );
    }
    checked.add(p.namespace);
  }
}

/**
 * Sends every create and update as a dry run first, in few calls (ApiClient.dryRunWrites): the
 * server defaults, validates and admits each as the real write would (an unchanged object sends
 * nothing). `live` is every object's state as read before (readLive); one that someone wrote
 * since is judged again alone, read afresh. Throws one error naming every refused document;
 * nothing is written. Answers each object's dry-run outcome.
 */
export async function dryRunAll(
  api: ApiClient,
  prepared: readonly PreparedObject[],
  live: Map<PreparedObject, KubeObject | null>,
  write: Pick<WriteOptions, 'discardAnswer'> = {},
): Promise<Map<PreparedObject, Applied>> {
  const createdNamespaces = new Set(prepared.filter((p) => p.info.kind === 'Namespace').map((p) => p.name));
  const problemOf = new Map<PreparedObject, Error>();
  const outcomes = new Map<PreparedObject, Applied>();
  /** Takes a refusal as a problem of its document; what the manifest cannot cause is thrown. */
  const refused = (p: PreparedObject, err: unknown): void => {
    // The namespace this apply creates does not exist yet, so the dry run cannot find it.
    if (err instanceof NotFoundError && p.info.namespaced && createdNamespaces.has(p.namespace)) return;
    if (err instanceof InvalidArgumentError) problemOf.set(p, err);
    else if (err instanceof FailedPreconditionError)
      problemOf.set(p, manifestDocumentError(p.doc, err.message, 'metadata'));
    else throw err;
  };
  const writes: Array<{ p: PreparedObject; planned: Exclude<PlannedApply, { action: 'unchanged' }> }> = [];
  for (const p of prepared) {
    let planned: PlannedApply;
    try {
      planned = planApply(p, live.get(p) ?? null);
    } catch (err) {
      refused(p, applyError(p, err));
      continue;
    }
    if (planned.action === 'unchanged') outcomes.set(p, planned);
    else writes.push({ p, planned });
  }
  const answers = await api.dryRunWrites(
    writes.map(({ planned }) => ({ verb: planned.verb, object: planned.object })),
    write,
  );
  const racedSince: PreparedObject[] = [];
  writes.forEach(({ p, planned }, i) => {
    const answer = answers[i]!;
    if (answer.error === undefined) outcomes.set(p, { action: planned.action, object: answer.object });
    else if (raced(p, answer.error)) racedSince.push(p);
    else refused(p, applyError(p, answer.error));
  });
  await inOrder(racedSince, APPLY_CONCURRENCY, async (p) => {
    try {
      outcomes.set(p, await applyObject(api, p, { ...write, dryRun: true }));
    } catch (err) {
      refused(p, err);
    }
  });
  // named in the documents' order
  const problems = prepared.flatMap((p) => problemOf.get(p) ?? []);
  if (problems.length === 1) throw problems[0]!;
  if (problems.length > 1) {
    throw new InvalidArgumentError(
      `${problems.length} documents were refused by the server, nothing was applied:\n${problems.map((p) => `  ${p.message}`).join('\n')}`,
      problems[0] instanceof InvalidArgumentError ? problems[0].field : undefined,
    );
  }
  return outcomes;
}

/**
 * Applies prepared objects: every document judged by a server dry run first, then namespaces, one
 * after the other, then the rest, several at a time; `done` hears of each in document order within
 * those two groups.
 */
export async function applyEvery(
  api: ApiClient,
  prepared: PreparedObject[],
  done: (p: PreparedObject, applied: Applied) => void,
  { keepAnswers = false }: { keepAnswers?: boolean } = {},
): Promise<void> {
  await checkNamespaces(api, prepared);
  const live = await readLive(api, prepared);
  // Without -o only each object's action is printed: the server's answers are not read
  // (Applied.object is then what was sent).
  const writeOptions = { discardAnswer: !keepAnswers };
  const planned = await dryRunAll(api, prepared, live, writeOptions);
  // An object the dry run found unchanged against the same live state is unchanged now: the merge
  // is pure, so computing it again (an unchanged re-apply of 2,000 objects: ~50 ms) would only
  // repeat the answer.
  const apply = async (p: PreparedObject): Promise<Applied> => {
    const dry = planned.get(p);
    return dry?.action === 'unchanged' ? dry : applyObject(api, p, writeOptions, live.get(p));
  };
  const namespaces = prepared.filter((p) => p.info.kind === 'Namespace');
  const rest = prepared.filter((p) => p.info.kind !== 'Namespace');
  await inOrder(namespaces, 1, apply, done);
  await inOrder(rest, APPLY_CONCURRENCY, apply, done);
}

/** applyEvery, printing `kind/name action` per object. */
export async function applyAll(
  api: ApiClient,
  prepared: PreparedObject[],
  print: (line: string) => void,
): Promise<void> {
  await applyEvery(api, prepared, (p, applied) =>
    print(`${resourceName(p.info.kind, p.info.group, p.name)} ${applied.action}`),
  );
}

/**
 * What applying would do, without writing: `plan` computes each merge here against the live
 * objects (a client dry run); otherwise the server judges every document (a server dry run) and
 * its answers are the outcome, except for documents in a namespace this apply would create, which
 * the server cannot judge yet: those are planned here.
 */
export async function dryRunOutcomes(
  api: ApiClient,
  prepared: PreparedObject[],
  plan: boolean,
): Promise<Map<PreparedObject, Applied>> {
  await checkNamespaces(api, prepared);
  const live = await readLive(api, prepared);
  const outcomes = plan ? new Map<PreparedObject, Applied>() : await dryRunAll(api, prepared, live);
  const unjudged = prepared.filter((p) => !outcomes.has(p));
  await inOrder(unjudged, APPLY_CONCURRENCY, async (p) =>
    outcomes.set(p, await applyObject(api, p, { plan: true }, live.get(p))),
  );
  return outcomes;
}

export function registerApply(program: Command): void {
  const command = program
    .command('apply')
    .description('create or update objects from manifests (files, directories, - for stdin)')
    .requiredOption(
      '-f, --filename <path...>',
      'manifest file, directory of *.yaml/*.yml/*.json, or - for stdin',
    )
    .option('-n, --namespace <ns>', 'namespace for objects that do not name one')
    .option('-o, --output <format>', 'print the objects: json, yaml, name or jsonpath=TEMPLATE');
  registerDryRun(command).action(
    async (
      opts: { filename: string[]; namespace?: string; output?: string; dryRun?: string | boolean },
      cmd: Command,
    ) => {
      const dryRun = dryRunOf(opts.dryRun);
      const output = opts.output === undefined ? undefined : parseOutput(opts.output, WRITTEN_FORMATS);
      const prepared = orderForApply(await loadManifests(opts.filename, opts.namespace));
      await withClient(cmd, async (api) => {
        if (dryRun === 'none' && output === undefined) {
          const lines = lineBatcher();
          try {
            await applyAll(api, prepared, lines.print);
          } finally {
            lines.flush();
          }
        } else await applyPrinting(api, prepared, dryRun, output);
      });
    },
  );
}

/** Namespaces first: a manifest that creates a namespace and its contents applies in one go. */
export function orderForApply(prepared: PreparedObject[]): PreparedObject[] {
  return [
    ...prepared.filter((p) => p.info.kind === 'Namespace'),
    ...prepared.filter((p) => p.info.kind !== 'Namespace'),
  ];
}
