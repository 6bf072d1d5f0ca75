/**
 * Node groups: one identity acting for many hollow nodes (`skiff agent --hollow`, kubemark-style).
 *
 *   certificate   CN=system:node-group:<P>, O=system:nodes (one for the whole group)
 *   members       the nodes named <P>-<digits> that the group registered: their Node carries the
 *                 label skiff.io/node-group=<P>, so a real node that happens to be named <P>-7 is
 *                 never the group's (the node authorizer and the status ingest check the label)
 *   pods          watched with the field selector spec.nodeGroup=<P> (a pod whose spec.nodeName is
 *                 <P>-<digits>), so one watch serves every member
 *   NATS          skiff.node-group.<P>.pods and .heartbeat, one message for many members: NATS
 *                 wildcards match whole tokens only, so "skiff.node.<P>-*" cannot be a permission;
 *                 the group's own subject can, and the control plane checks each member named
 */

/** The subject prefix of a node group's certificate (its CN is this plus the group). */
export const NODE_GROUP_USER_PREFIX = 'system:node-group:';
/** The label on every Node a group registered: the group's name. */
export const NODE_GROUP_LABEL = 'skiff.io/node-group';
/** The pods' field selector field naming a group (a pod on a node <P>-<digits>). */
export const NODE_GROUP_FIELD = 'spec.nodeGroup';
export const NODE_GROUP_SUBJECT_PREFIX = 'skiff.node-group';

/** A group's name: a DNS label without a trailing digit run that could blur members (and no dots). */
const GROUP_NAME = /^[a-z0-9]([-a-z0-9]*[a-z])?$/;
const MEMBER = /^([a-z0-9]([-a-z0-9]*[a-z])?)-([0-9]+)$/;

/** Why `group` is not a usable node-group name, or undefined when it is. */
export function nodeGroupNameProblem(group: string): string | undefined {
  if (group.length === 0) return 'it is empty';
  if (group.length > 40) return 'it is longer than 40 characters';
  if (!GROUP_NAME.test(group))
    return "it must be lower-case letters, digits and '-', start with a letter or digit and end with a letter";
  return undefined;
}

/** The member `index` of `group`: <P>-0000 … (four digits at least). */
export function nodeGroupMember(group: string, index: number): string {
  return `${group}-${String(index).padStart(4, '0')}`;
}

/** The group a node's name puts it in (<P>-<digits> → P), or undefined. */
export function nodeGroupOfName(node: string): string | undefined {
  return MEMBER.exec(node)?.[1];
}

/** Whether `node` is named as a member of `group`. */
export function isNodeGroupMemberName(group: string, node: string): boolean {
  return nodeGroupOfName(node) === group;
}

export function nodeGroupPodsSubject(group: string): string {
  return `${NODE_GROUP_SUBJECT_PREFIX}.${group}.pods`;
}

export function nodeGroupHeartbeatSubject(group: string): string {
  return `${NODE_GROUP_SUBJECT_PREFIX}.${group}.heartbeat`;
}
