/**
 * skiff.v1.Admin: operations on the cluster itself (api.proto), for admin tokens only. Same
 * authentication and error mapping as the object API (grpc-server.ts).
 */
import type * as grpc from '@grpc/grpc-js';
import { PermissionDeniedError } from '../../proto/errors.js';
import { toServiceError } from './grpc-errors.js';
import { grpcServiceDefinition, type WireMessage } from '../../proto/grpc-service.js';
import { schemaRoot } from '../../proto/schema.js';
import type { Logger } from '../../proto/support/logger.js';
import type { Authenticator } from './auth.js';

/** What the Admin service does; the control plane supplies it (main.ts). */
export interface AdminOperations {
  rotateEncryptionKey(): Promise<{
    keyName: string;
    rewritten: number;
    alreadyCurrent: number;
    resources: string[];
  }>;
}

export interface AdminService {
  definition: grpc.ServiceDefinition;
  implementation: grpc.UntypedServiceImplementation;
}

export function createAdminService(options: {
  auth: Authenticator;
  operations: AdminOperations;
  log: Logger;
}): AdminService {
  const { auth, operations, log } = options;
  const definition = grpcServiceDefinition(schemaRoot().lookupService('skiff.v1.Admin'));
  const admin = async (call: grpc.ServerUnaryCall<WireMessage, WireMessage>, what: string): Promise<void> => {
    const principal = await auth.authenticate(call.metadata.get('authorization')[0]?.toString());
    if (principal.role !== 'admin') {
      throw new PermissionDeniedError(
        `${what}: token "${principal.name}" has role ${principal.role}; only admin tokens may`,
      );
    }
  };
  const implementation: grpc.UntypedServiceImplementation = {
    RotateEncryptionKey: (
      call: grpc.ServerUnaryCall<WireMessage, WireMessage>,
      callback: grpc.sendUnaryData<WireMessage>,
    ) => {
      const what = 'rotate the encryption key';
      admin(call, what)
        .then(() => operations.rotateEncryptionKey())
        .then((result) => {
          log.info(result, 'encryption key rotated');
          callback(null, {
            keyName: result.keyName,
            rewritten: String(result.rewritten),
            alreadyCurrent: String(result.alreadyCurrent),
            resources: result.resources,
          });
        })
        .catch((err: unknown) => {
          const serviceError = toServiceError(err);
          if (serviceError.internal) log.error({ err }, `${what} failed`);
          callback(serviceError);
        });
    },
  };
  return { definition, implementation };
}
