/**
 * The options and results of the API's list, delete and watch calls, shared by both sides: the
 * server's handlers (controlplane/api/handlers.ts, with ApiObject items) and the typed client
 * (proto/client.ts, with KubeObjects).
 */
import type { KubeObject } from './gen/types.js';

export interface ListOptions {
  /** Omitted or empty: every namespace. */
  namespace?: string;
  /** `app=web,tier!=db,env in (a,b),!legacy` */
  labelSelector?: string;
  /** `metadata.name=x,spec.nodeName=n1,status.phase!=Running` */
  fieldSelector?: string;
  /** Page size; omitted or 0: everything. */
  limit?: number;
  /** The `continue` token of the previous page. */
  continue?: string;
  /**
   * Omitted or "": the latest state (a consistent read); "0": any state the control plane's watch
   * cache holds; "N": a state not older than revision N. Not with limit or continue.
   */
  resourceVersion?: string;
}

export interface ListResult<T = KubeObject> {
  items: T[];
  /** The revision to watch from for changes after this list. */
  resourceVersion: string;
  /** Set when more pages follow. */
  continue?: string;
}

export interface DeleteOptions {
  gracePeriodSeconds?: number;
  /** A mismatch fails the delete with ConflictError. */
  preconditions?: { uid?: string; resourceVersion?: string };
  /** Every check, nothing written: the object as the delete would leave it. */
  dryRun?: boolean;
  /** What becomes of the objects this one owns; default Background (controlplane/controllers/garbage-collector). */
  propagationPolicy?: PropagationPolicy;
}

export const PROPAGATION_POLICIES = ['Background', 'Foreground', 'Orphan'] as const;
export type PropagationPolicy = (typeof PROPAGATION_POLICIES)[number];

/**
 * Writes one DryRunWrites call may carry (api.proto): the call's one deadline covers them all, and
 * each update among them reads etcd. A client sends more in several calls.
 */
export const MAX_DRY_RUN_WRITES = 1000;

export interface WatchOptions {
  namespace?: string;
  labelSelector?: string;
  fieldSelector?: string;
  /** Deliver the events after this revision (from a list or an earlier event); omitted: from now. */
  resourceVersion?: string;
  /** Ask for periodic BOOKMARK events carrying the current revision. */
  allowBookmarks?: boolean;
  /** Aborting ends the iteration quietly. */
  signal?: AbortSignal;
}

export type WatchEventType = 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK';

export interface WatchEvent<T = KubeObject> {
  type: WatchEventType;
  /** Absent for BOOKMARK. For DELETED, the object as it was deleted. */
  object?: T;
  /**
   * Resume from here (not from object.metadata.resourceVersion): it is one less than the
   * object's revision while other objects of that revision are still to come, so a resume may
   * repeat events of one revision but never misses one.
   */
  resourceVersion: string;
}
