/**
 * Who may do what in the registry. Credentials are the cluster's API tokens, sent either as
 * `Authorization: Bearer <token>` or, for clients that only speak Basic (skopeo, docker login),
 * as `Authorization: Basic base64(<any user name>:<token>)`: the user name is ignored and the
 * password is the token. Both become one `Bearer <token>` header for the API's Authenticator
 * (controlplane/api/auth.ts), so a token is checked, cached and revoked the same way on both ports.
 *
 *   pull    (GET, HEAD)            every authenticated principal but a join token: roles admin,
 *                                  edit, view and pull (what node agents are given), and node agents
 *   push    (POST, PATCH, PUT)     roles admin and edit
 *   delete  (DELETE)               roles admin and edit
 *
 * A missing or unknown credential is 401 with `WWW-Authenticate: Basic realm="skiff"`, the
 * challenge that makes Docker-style clients send the credentials they were given.
 */
import type { Principal } from '../api/auth.js';
import { RegistryError } from './errors.js';

export type RegistryAction = 'pull' | 'push' | 'delete';

/** What the registry needs of the API's Authenticator. */
export interface RegistryAuthenticator {
  /** The principal of a `Bearer <token>` header; rejects (UnauthenticatedError) otherwise. */
  authenticate(header: string | undefined): Promise<Principal>;
}

export const CHALLENGE = 'Basic realm="skiff", charset="UTF-8"';

/** Longest Authorization header read (a token is 43 characters; Basic adds a user name). */
const MAX_HEADER = 4096;

/**
 * The credential of an Authorization header as a `Bearer <token>` header; undefined when there is
 * none or it is neither a bearer token nor Basic credentials with a password.
 */
export function bearerHeaderOf(header: string | undefined): string | undefined {
  if (header === undefined || header.length > MAX_HEADER) return undefined;
  const bearer = /^Bearer\s+([\x21-\x7e]+)\s*$/i.exec(header);
  if (bearer) return `Bearer ${bearer[1]!}`;
  const basic = /^Basic\s+([A-Za-z0-9+/]+={0,2})\s*$/i.exec(header);
  if (!basic) return undefined;
  const decoded = Buffer.from(basic[1]!, 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon < 0) return undefined;
  const password = decoded.slice(colon + 1);
  if (!/^[\x21-\x7e]+$/.test(password)) return undefined;
  return `Bearer ${password}`;
}

export function actionOf(method: string | undefined): RegistryAction {
  switch (method) {
    case 'GET':
    case 'HEAD':
      return 'pull';
    case 'DELETE':
      return 'delete';
    default:
      return 'push';
  }
}

/** Pull for everyone authenticated but join tokens; push and delete for admin and edit. DENIED (403) otherwise. */
export function authorizeRegistry(principal: Principal, action: RegistryAction, what: string): void {
  if (principal.role === 'join') {
    throw new RegistryError(
      'DENIED',
      `${action} ${what}: token "${principal.name}" has role join, which may only obtain a node's certificate; use a view, edit or admin token`,
    );
  }
  if (action === 'pull') return;
  if (principal.role === 'admin' || principal.role === 'edit') return;
  throw new RegistryError(
    'DENIED',
    `${action} ${what}: token "${principal.name}" has role ${principal.role}, which may only pull; use an edit or admin token`,
  );
}

/** The 401 for a request without a valid credential. */
export function unauthorized(reason: string): RegistryError {
  return new RegistryError('UNAUTHORIZED', reason, { headers: { 'WWW-Authenticate': CHALLENGE } });
}
