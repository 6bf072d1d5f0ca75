/**
 * NATS permissions by client certificate: nats-server's `verify_and_map` (checked for 2.9, the
 * Debian package) maps a verified certificate to a user by its email SANs, then its DNS SANs, then
 * its subject as an RFC 2253 string, "CN=system:node:n1,O=system:nodes" for a node certificate
 * (pki.ts writes O then CN; Go prints RDNs last first). So node certificates carry no SANs, and
 * each node is one user here:
 *
 *   the control plane ("CN=skiff-controlplane")   publish and subscribe anything
 *   node N ("CN=system:node:N,O=system:nodes")    publish skiff.node.<N>.>, subscribe
 *                                                 skiff.control.> and _INBOX.> (and answer
 *                                                 requests it receives: allow_responses)
 *
 * A certificate mapped to no user is refused ("Authorization Violation"). Users cannot be
 * templated in nats-server's configuration, so the file lists every node: `skiff up` writes it
 * with none, and the control plane adds a node when it issues its certificate, then tells
 * nats-server to reload (controlplane/nats-node-users.ts). `<N>` is the node's name with `.` as
 * `_` (a subject token cannot hold a dot; DNS names hold no `_`), as agents spell their subjects.
 *
 * A node group (hollow nodes, proto/node-group.ts) is one user too:
 *
 *   group G ("CN=system:node-group:G,O=system:nodes")  publish skiff.node-group.<G>.>, subscribe
 *                                                      as a node
 */
import { NODE_GROUP_SUBJECT_PREFIX, NODE_GROUP_USER_PREFIX, nodeGroupNameProblem } from '../node-group.js';

/** Who a NATS user is made for: a node, or a node group. */
export type NatsIdentity = { node: string } | { nodeGroup: string };

export const CONTROLPLANE_NATS_USER = 'CN=skiff-controlplane';

/** The node's name as one NATS subject token. */
export function natsNodeToken(node: string): string {
  return node.replaceAll('.', '_');
}

/** The user a node certificate maps to. */
export function natsNodeUser(node: string): string {
  return `CN=system:node:${node},O=system:nodes`;
}

/** The user a node group's certificate maps to. */
export function natsNodeGroupUser(group: string): string {
  return `CN=${NODE_GROUP_USER_PREFIX}${group},O=system:nodes`;
}

const NODE_LINE = /^ {4}\{ user: "CN=system:node:([a-z0-9.-]+),O=system:nodes",/;
const GROUP_LINE = /^ {4}\{ user: "CN=system:node-group:([a-z0-9-]+),O=system:nodes",/;

const NODE_SUBSCRIBE = 'subscribe: { allow: ["skiff.control.>", "_INBOX.>"] }, allow_responses: true';

/** The `authorization { … }` block for the control plane, `nodes` and `groups`. */
export function formatNatsAuthorization(nodes: Iterable<string>, groups: Iterable<string> = []): string {
  const lines = [
    '# Written by skiff (skiff up, then the control plane as nodes join): one user per certificate.',
    'authorization {',
    '  users = [',
    `    { user: "${CONTROLPLANE_NATS_USER}", permissions: { publish: ">", subscribe: ">" } }`,
  ];
  for (const node of [...new Set(nodes)].sort()) {
    if (!/^[a-z0-9.-]+$/.test(node)) continue;
    const token = natsNodeToken(node);
    lines.push(
      `    { user: "${natsNodeUser(node)}", permissions: { publish: { allow: ["skiff.node.${token}.>"] }, ${NODE_SUBSCRIBE} } }`,
    );
  }
  for (const group of [...new Set(groups)].sort()) {
    if (nodeGroupNameProblem(group) !== undefined) continue;
    lines.push(
      `    { user: "${natsNodeGroupUser(group)}", permissions: { publish: { allow: ["${NODE_GROUP_SUBJECT_PREFIX}.${group}.>"] }, ${NODE_SUBSCRIBE} } }`,
    );
  }
  lines.push('  ]', '}', '');
  return lines.join('\n');
}

/** The nodes and node groups a file written by formatNatsAuthorization lists. */
export function natsAuthorizationUsers(text: string): { nodes: string[]; groups: string[] } {
  const lines = text.split('\n');
  const matching = (pattern: RegExp): string[] =>
    lines.map((line) => pattern.exec(line)?.[1]).filter((name): name is string => name !== undefined);
  return { nodes: matching(NODE_LINE), groups: matching(GROUP_LINE) };
}

/** nats-server's main configuration: TLS with client certificates mapped to users, and the users. */
export function formatNatsServerConfig(options: {
  certFile: string;
  keyFile: string;
  caFile: string;
  /** Relative to the configuration's folder: nats-server joins an include's path to it. */
  authorizationFile: string;
  pidFile: string;
}): string {
  const quote = (value: string): string => JSON.stringify(value);
  return [
    '# Written by skiff up.',
    `pid_file: ${quote(options.pidFile)}`,
    'tls {',
    `  cert_file: ${quote(options.certFile)}`,
    `  key_file: ${quote(options.keyFile)}`,
    `  ca_file: ${quote(options.caFile)}`,
    '  verify_and_map: true',
    '}',
    `include ${quote(options.authorizationFile)}`,
    '',
  ].join('\n');
}
