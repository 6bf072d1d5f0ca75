/**
 * skiff.v1.Nodes: how a node agent gets its client certificate (api.proto).
 *
 *   GetTrustBundle          unauthenticated: the CA bundle, which the agent checks against the hash
 *                           its join token carries before it trusts this server
 *   IssueNodeCertificate    a join token (bearer), or the node's own still-valid certificate over
 *                           mutual TLS (renewal, only for itself) → a certificate for the public
 *                           key sent: CN=system:node:<node>, O=system:nodes, client auth, valid
 *                           for `ttlMs` (30 days), never longer than the CA
 *
 * The agent sends a public key rather than a CSR: a CSR's signature proves possession of the key,
 * which protects a CA that vouches for a key to third parties; here the certificate only opens
 * this API and NATS to whoever also holds the private key, so a certificate issued for someone
 * else's key is of no use to the caller. Every issue and every refusal is logged.
 */
import { createPublicKey, type KeyObject } from 'node:crypto';
import type * as grpc from '@grpc/grpc-js';
import {
  InvalidArgumentError,
  PermissionDeniedError,
  UnauthenticatedError,
  errorMessage,
} from '../../proto/errors.js';
import { services } from '../../proto/gen/messages.js';
import { grpcServiceDefinition } from '../../proto/grpc-service.js';
import type { WireMessage } from '../../proto/wire/message-type.js';
import type { Logger } from '../../proto/support/logger.js';
import type { CertificateAuthority } from '../../proto/support/pki.js';
import { NODES_GROUP, NODE_USER_PREFIX, type Authenticator, type Principal } from './auth.js';
import { toServiceError } from './grpc-errors.js';
import { NODE_GROUP_USER_PREFIX, nodeGroupNameProblem } from '../../proto/node-group.js';
import type { NatsIdentity } from '../../proto/support/nats-authorization.js';

/** How long a node certificate lives: the agent renews it well before (node-agent/agent/node-credentials.ts). */
export const NODE_CERTIFICATE_TTL_MS = 30 * 24 * 3600 * 1000;

const NODE_NAME = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const MAX_PUBLIC_KEY_BYTES = 16 * 1024;

export interface NodeCertificateOptions {
  ca: CertificateAuthority;
  /** PEM: what clients verify the API with. */
  bundle: string;
  auth: Authenticator;
  log: Logger;
  ttlMs?: number;
  now?: () => Date;
  /** Makes nodes' registry pull tokens (IssueRegistryToken); absent: the call is refused. */
  pullTokens?: { issueNodePullToken(node: string): Promise<{ info: { expiresAt?: string }; token: string }> };
  /** Told of every node or node group a certificate was issued to (NATS permissions follow it). */
  onIssued?: (issued: NatsIdentity) => Promise<void> | void;
}

export interface IssuedCertificate {
  certificate: string;
  notAfter: Date;
}

/** The logic of IssueNodeCertificate, without gRPC: who may, for which node, for which key. */
export class NodeCertificateIssuer {
  private readonly ttlMs: number;
  private readonly now: () => Date;

  constructor(private readonly options: NodeCertificateOptions) {
    this.ttlMs = options.ttlMs ?? NODE_CERTIFICATE_TTL_MS;
    this.now = options.now ?? (() => new Date());
  }

  /**
   * A certificate for `subject`: a node (`nodeName`) or a node group (`nodeGroup`, for hollow
   * nodes), for a join token or the same identity's own certificate (renewal).
   */
  async issue(
    caller: Principal,
    subject: { nodeName: string; nodeGroup?: string },
    publicKeyPem: string,
  ): Promise<IssuedCertificate> {
    const { nodeName } = subject;
    const nodeGroup = subject.nodeGroup || undefined;
    const whom = nodeGroup !== undefined ? `node group "${nodeGroup}"` : `node "${nodeName}"`;
    const action = `issue a certificate for ${whom}`;
    if (nodeGroup !== undefined) {
      const problem = nodeGroupNameProblem(nodeGroup);
      if (nodeName !== '')
        throw new InvalidArgumentError(`${action}: give nodeName or nodeGroup, not both`, 'nodeGroup');
      if (problem !== undefined)
        throw new InvalidArgumentError(`${action}: the node group's name: ${problem}`, 'nodeGroup');
    } else if (nodeName.length > 253 || !NODE_NAME.test(nodeName)) {
      throw new InvalidArgumentError(
        `${action}: the node name is not a DNS subdomain (lower-case letters, digits, '-' and '.', at most 253)`,
        'nodeName',
      );
    }
    const own =
      caller.role === 'node' &&
      (nodeGroup !== undefined ? caller.nodeGroup === nodeGroup : caller.node === nodeName);
    if (caller.role === 'node' ? !own : caller.role !== 'join') {
      throw new PermissionDeniedError(
        caller.role === 'node'
          ? `${action}: ${caller.nodeGroup !== undefined ? `node group "${caller.nodeGroup}"` : `node "${caller.node}"`} may renew only its own certificate`
          : `${action}: ${caller.name} has role ${caller.role}; a certificate takes a join token (skiff token create --role join) or the node's own certificate`,
      );
    }
    let publicKey: KeyObject;
    try {
      if (publicKeyPem.length > MAX_PUBLIC_KEY_BYTES)
        throw new Error(`it is over ${MAX_PUBLIC_KEY_BYTES} bytes`);
      publicKey = createPublicKey(publicKeyPem);
      if (publicKey.type !== 'public') throw new Error('it is not a public key');
    } catch (err) {
      throw new InvalidArgumentError(
        `${action}: publicKey is not a PEM public key: ${errorMessage(err)}`,
        'publicKey',
        { cause: err },
      );
    }
    const now = this.now();
    const certificate = this.options.ca.issue(publicKey, {
      commonName:
        nodeGroup !== undefined ? `${NODE_GROUP_USER_PREFIX}${nodeGroup}` : `${NODE_USER_PREFIX}${nodeName}`,
      organizations: [NODES_GROUP],
      usages: ['client auth'],
      now,
      notAfter: new Date(now.getTime() + this.ttlMs),
    });
    await this.options.onIssued?.(nodeGroup !== undefined ? { nodeGroup } : { node: nodeName });
    this.options.log.info(
      {
        ...(nodeGroup !== undefined ? { nodeGroup } : { node: nodeName }),
        by: caller.name,
        renewal: caller.role === 'node',
        notAfter: certificate.validToDate.toISOString(),
        serial: certificate.serialNumber,
      },
      'node certificate issued',
    );
    return { certificate: certificate.toString(), notAfter: certificate.validToDate };
  }
}

type UnaryHandler = (
  call: grpc.ServerUnaryCall<WireMessage, WireMessage>,
  callback: grpc.sendUnaryData<WireMessage>,
) => void;

export function createNodesService(options: NodeCertificateOptions): {
  definition: grpc.ServiceDefinition;
  implementation: grpc.UntypedServiceImplementation;
} {
  const { auth, log } = options;
  const issuer = new NodeCertificateIssuer(options);
  const definition = grpcServiceDefinition(services.Nodes);
  const GetTrustBundle: UnaryHandler = (_call, callback) => callback(null, { caBundle: options.bundle });
  const IssueNodeCertificate: UnaryHandler = (call, callback) => {
    const nodeName = String(call.request.nodeName ?? '');
    const nodeGroup = String(call.request.nodeGroup ?? '');
    let caller: Principal | undefined;
    auth
      .authenticateCall(
        call.metadata.get('authorization')[0]?.toString(),
        call.getAuthContext().sslPeerCertificate,
      )
      .then((principal) => {
        caller = principal;
        return issuer.issue(principal, { nodeName, nodeGroup }, String(call.request.publicKey ?? ''));
      })
      .then((issued) =>
        callback(null, {
          certificate: issued.certificate,
          caBundle: options.bundle,
          notAfter: issued.notAfter.toISOString(),
        }),
      )
      .catch((err: unknown) => {
        const serviceError = toServiceError(err);
        if (
          err instanceof UnauthenticatedError ||
          err instanceof PermissionDeniedError ||
          err instanceof InvalidArgumentError
        ) {
          log.warn(
            {
              node: nodeName,
              ...(nodeGroup !== '' ? { nodeGroup } : {}),
              principal: caller?.name ?? 'unauthenticated',
              peer: call.getPeer(),
              reason: errorMessage(err),
            },
            'node certificate refused',
          );
        } else if (serviceError.internal) log.error({ err, node: nodeName }, 'issue node certificate failed');
        callback(serviceError);
      });
  };
  const IssueRegistryToken: UnaryHandler = (call, callback) => {
    auth
      .authenticateCall(
        call.metadata.get('authorization')[0]?.toString(),
        call.getAuthContext().sslPeerCertificate,
      )
      .then(async (principal) => {
        if (principal.role !== 'node' || !principal.node)
          throw new PermissionDeniedError(
            `issue registry token: only a node, over mutual TLS with its certificate, may ask (caller ${principal.name})`,
          );
        if (!options.pullTokens)
          throw new PermissionDeniedError(
            'issue registry token: this control plane issues no registry tokens',
          );
        const issued = await options.pullTokens.issueNodePullToken(principal.node);
        log.info(
          { node: principal.node, expiresAt: issued.info.expiresAt },
          'registry pull token issued to node',
        );
        callback(null, { token: issued.token, expiresAt: issued.info.expiresAt ?? '' });
      })
      .catch((err: unknown) => {
        log.warn({ peer: call.getPeer(), reason: errorMessage(err) }, 'registry token refused');
        callback(toServiceError(err));
      });
  };
  return { definition, implementation: { GetTrustBundle, IssueNodeCertificate, IssueRegistryToken } };
}
