/**
 * What node agents report to the control plane over NATS: the subjects and the messages (JSON).
 *
 *   skiff.node.<node>.pods        PodStatusBatch   an agent's pod statuses, as they change
 *   skiff.node.<node>.heartbeat   NodeHeartbeat    every heartbeat interval, and at once on a change
 *   skiff.node-group.<g>.pods     PodStatusBatch   a node group's (hollow nodes, node-group.ts): each
 *                                                  report names its member node
 *   skiff.node-group.<g>.heartbeat NodeGroupHeartbeat  the members' heartbeats in one message
 *   skiff.control.resync          {}               the control plane asks every agent to report
 *                                                  every pod again (it started, or lost NATS)
 *   skiff.control.resync.node.<n>   {}             the same of one node (it came back after it was
 *   skiff.control.resync.group.<g>  {}             marked Unknown), or of a node group's members
 *
 * An agent publishes only under its own `skiff.node.<node>.` (NATS permissions enforce it where the
 * cluster has its CA); the control plane also checks that a reported pod is bound to that node.
 *
 * Order: each report carries `seq`, which grows for every report an agent makes and keeps growing
 * across the agent's restarts (it starts from the clock), so the control plane never writes an
 * older status over a newer one, however messages are delayed or replayed.
 */
import type { Condition, PodStatus } from './gen/types.js';

export const NODE_SUBJECT_PREFIX = 'skiff.node';
export const RESYNC_SUBJECT = 'skiff.control.resync';

/** Node names are DNS subdomains: no `.`-free guarantee, so the name is encoded as one NATS token. */
export function nodeSubjectToken(nodeName: string): string {
  return nodeName.replaceAll('.', '_');
}

/** Where one node's agent is asked to report every pod again. */
export function nodeResyncSubject(nodeName: string): string {
  return `${RESYNC_SUBJECT}.node.${nodeSubjectToken(nodeName)}`;
}

/** Where a node group (hollow nodes) is asked to report every pod again. */
export function groupResyncSubject(group: string): string {
  return `${RESYNC_SUBJECT}.group.${group}`;
}

export function podStatusSubject(nodeName: string): string {
  return `${NODE_SUBJECT_PREFIX}.${nodeSubjectToken(nodeName)}.pods`;
}

export function heartbeatSubject(nodeName: string): string {
  return `${NODE_SUBJECT_PREFIX}.${nodeSubjectToken(nodeName)}.heartbeat`;
}

export interface PodStatusReport {
  namespace: string;
  name: string;
  /** The pod this status is about: a report for an older pod of the same name is dropped. */
  uid: string;
  seq: number;
  status: PodStatus;
  /** On a node group's subject: the member node that reports (a node's own subject names it). */
  node?: string;
}

export interface PodStatusBatch {
  node: string;
  reports: PodStatusReport[];
}

export interface NodeHeartbeat {
  node: string;
  seq: number;
  /** RFC 3339, the agent's clock. */
  time: string;
  /** Ready, MemoryPressure, DiskPressure, PIDPressure as the agent reads them. */
  conditions: Condition[];
}

/** A node group's heartbeat: the same conditions for each member it names. */
export interface NodeGroupHeartbeat {
  seq: number;
  time: string;
  nodes: string[];
  conditions: Condition[];
}

/** A sequence that grows for every call and across restarts of the process (it starts at the clock). */
export function reportSequence(now: () => number = Date.now): () => number {
  let last = 0;
  return () => {
    last = Math.max(last + 1, now() * 1000);
    return last;
  };
}

/** One for every message (a decoder per message was a tenth of reading a 200-report one). */
const utf8 = new TextDecoder();

/** The JSON of a NATS message, or a clear error naming the subject. */
export function decodeReport<T>(subject: string, data: Uint8Array): T {
  try {
    return JSON.parse(utf8.decode(data)) as T;
  } catch (err) {
    throw new Error(`report on ${subject} is not JSON: ${(err as Error).message}`);
  }
}
