/**
 * Read, change, write: how patch, label and annotate change one live object. The change is a pure
 * function of the object's JSON; the result is read strictly (proto/objects.ts), must keep the
 * object's kind, name and namespace, and is written with the resourceVersion it was computed from.
 * A Conflict (someone wrote in between) reads again and recomputes, a bounded number of times.
 */
import type { ApiClient } from '../../proto/client.js';
import { ConflictError, InvalidArgumentError } from '../../proto/errors.js';
import type { KubeObject } from '../../proto/gen/types.js';
import type { KindInfo } from '../../proto/kinds.js';
import { parseObject } from '../../proto/objects.js';
import type { ObjectJson } from '../../proto/printing/fields.js';
import { deepEqual, resourceName } from '../apply.js';
import type { DryRun } from './context.js';

const MAX_ATTEMPTS = 10;

/** The change itself refused the object (its message says what): no field prefix is added. */
class ChangeRefused extends InvalidArgumentError {}

export interface UpdateResult {
  before: KubeObject;
  /** What the server stored (or would, for a dry run). */
  after: KubeObject;
  changed: boolean;
}

/** Refuses a result that renamed or moved the object: an update cannot, and a patch should not. */
export function checkIdentity(before: KubeObject, after: KubeObject): void {
  const same = (field: string, a: unknown, b: unknown): void => {
    if ((a ?? '') !== (b ?? ''))
      throw new InvalidArgumentError(
        `${field}: cannot be changed (from "${String(a ?? '')}" to "${String(b ?? '')}")`,
        field,
      );
  };
  same('apiVersion', before.apiVersion, after.apiVersion);
  same('kind', before.kind, after.kind);
  same('metadata.name', before.metadata.name, after.metadata.name);
  same('metadata.namespace', before.metadata.namespace, after.metadata.namespace);
}

/**
 * Changes object `name` with `change`; errors in the result (or the server's verdict on it) read
 * `VERB kind.group/name: field: reason`.
 */
export async function updateObject(
  api: ApiClient,
  info: KindInfo,
  namespace: string,
  name: string,
  change: (live: ObjectJson) => ObjectJson,
  dryRun: DryRun,
  verb: string,
): Promise<UpdateResult> {
  try {
    return await updateWithRetry(api, info, namespace, name, change, dryRun);
  } catch (err) {
    if (!(err instanceof InvalidArgumentError)) throw err;
    const field =
      !(err instanceof ChangeRefused) && err.field && !err.message.includes(err.field)
        ? `${err.field}: `
        : '';
    throw new InvalidArgumentError(
      `${verb} ${resourceName(info.kind, info.group, name)}: ${field}${err.message}`,
      err.field,
      {
        cause: err,
      },
    );
  }
}

async function updateWithRetry(
  api: ApiClient,
  info: KindInfo,
  namespace: string,
  name: string,
  change: (live: ObjectJson) => ObjectJson,
  dryRun: DryRun,
): Promise<UpdateResult> {
  for (let attempt = 1; ; attempt++) {
    const before = await api.get(info.kind, namespace, name);
    let changedJson: ObjectJson;
    try {
      changedJson = change(structuredClone(before) as unknown as ObjectJson);
    } catch (err) {
      if (err instanceof InvalidArgumentError)
        throw new ChangeRefused(err.message, err.field, { cause: err });
      throw err;
    }
    const after = parseObject(changedJson);
    checkIdentity(before, after);
    if (deepEqual(after, before)) return { before, after: before, changed: false };
    // A resourceVersion the change set itself is a precondition the user asked for: no retry then.
    const pinned =
      after.metadata.resourceVersion !== undefined &&
      after.metadata.resourceVersion !== before.metadata.resourceVersion;
    if (!pinned) after.metadata.resourceVersion = before.metadata.resourceVersion;
    if (dryRun === 'client') return { before, after, changed: true };
    try {
      return { before, after: await api.update(after, { dryRun: dryRun === 'server' }), changed: true };
    } catch (err) {
      if (err instanceof ConflictError && !pinned && attempt < MAX_ATTEMPTS) continue;
      throw err;
    }
  }
}
