/**
 * skiff.v1.Admin: operations on the cluster itself (api.proto), for admin tokens only. Same
 * authentication and error mapping as the object API (grpc-server.ts).
 */
import type * as grpc from '@grpc/grpc-js';
import { PermissionDeniedError } from '../../proto/errors.js';
import { toServiceError } from './grpc-errors.js';
import { services } from '../../proto/gen/messages.js';
import { grpcServiceDefinition } from '../../proto/grpc-service.js';
import type { Logger } from '../../proto/support/logger.js';
import type { WireMessage } from '../../proto/wire/message-type.js';
import type { Authenticator, Principal } from './auth.js';
import type { TokenAdmin, TokenInfo } from './token-admin.js';
import type { GarbageCollectionResult } from '../registry/gc.js';

/** What the Admin service does; the control plane supplies it (main.ts). */
export interface AdminOperations {
  rotateEncryptionKey(): Promise<{
    keyName: string;
    rewritten: number;
    alreadyCurrent: number;
    resources: string[];
  }>;
  collectRegistryGarbage(options: { dryRun: boolean }): Promise<GarbageCollectionResult>;
  tokens: TokenAdmin;
}

export interface AdminService {
  definition: grpc.ServiceDefinition;
  implementation: grpc.UntypedServiceImplementation;
}

type UnaryHandler = (
  call: grpc.ServerUnaryCall<WireMessage, WireMessage>,
  callback: grpc.sendUnaryData<WireMessage>,
) => void;

export function createAdminService(options: {
  auth: Authenticator;
  operations: AdminOperations;
  log: Logger;
}): AdminService {
  const { auth, operations, log } = options;
  const definition = grpcServiceDefinition(services.Admin);
  /** A unary call that only an admin token may make; `run` answers it. */
  const adminOnly =
    (what: string, run: (request: WireMessage, caller: Principal) => Promise<WireMessage>): UnaryHandler =>
    (call, callback) => {
      auth
        .authenticateCall(
          call.metadata.get('authorization')[0]?.toString(),
          call.getAuthContext().sslPeerCertificate,
        )
        .then((principal) => {
          if (principal.role !== 'admin') {
            log.warn({ principal: principal.name, role: principal.role, call: what }, 'admin call refused');
            throw new PermissionDeniedError(
              `${what}: ${principal.role === 'node' ? 'node' : 'token'} "${principal.name}" has role ${principal.role}; only admin tokens may`,
            );
          }
          return run(call.request, principal);
        })
        .then((response) => callback(null, response))
        .catch((err: unknown) => {
          const serviceError = toServiceError(err);
          if (serviceError.internal) log.error({ err }, `${what} failed`);
          callback(serviceError);
        });
    };
  const implementation: grpc.UntypedServiceImplementation = {
    RotateEncryptionKey: adminOnly('rotate the encryption key', async () => {
      const result = await operations.rotateEncryptionKey();
      log.info(result, 'encryption key rotated');
      return {
        keyName: result.keyName,
        rewritten: result.rewritten,
        alreadyCurrent: result.alreadyCurrent,
        resources: result.resources,
      };
    }),
    CollectRegistryGarbage: adminOnly('collect registry garbage', async (request) => {
      const result = await operations.collectRegistryGarbage({ dryRun: request.dryRun === true });
      return {
        dryRun: result.dryRun,
        manifests: result.manifests,
        referenced: result.referenced,
        deleted: result.deleted.map((b) => ({ digest: b.digest, size: b.size })),
        deletedBytes: result.deletedBytes,
        young: result.young,
        unlinked: result.unlinked,
        graceSeconds: Math.round(result.graceMs / 1000),
      };
    }),
    CreateToken: adminOnly('create token', async (request, caller) => {
      const { info, token } = await operations.tokens.create({
        name: String(request.name ?? ''),
        role: String(request.role ?? ''),
        ttlSeconds: Number(request.ttlSeconds ?? 0),
      });
      log.info(
        { token: info.name, role: info.role, expiresAt: info.expiresAt || 'never', by: caller.name },
        'api token created',
      );
      return { info: wireTokenInfo(info), token };
    }),
    ListTokens: adminOnly('list tokens', async () => ({
      tokens: (await operations.tokens.list()).map(wireTokenInfo),
    })),
    RevokeToken: adminOnly('revoke token', async (request, caller) => {
      const revoked = await operations.tokens.revoke(String(request.name ?? ''), caller);
      log.info({ token: revoked.name, by: caller.name }, 'api token revoked');
      return { revoked: wireTokenInfo(revoked) };
    }),
  };
  return { definition, implementation };
}

function wireTokenInfo(info: TokenInfo): WireMessage {
  return { name: info.name, role: info.role, createdAt: info.createdAt, expiresAt: info.expiresAt };
}
