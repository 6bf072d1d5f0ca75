/**
 * A join token: what `skiff token create --role join` prints and a node agent is given with
 * `--server`, in the form k3s uses for its secure tokens:
 *
 *   K10<hash>::<secret>
 *
 * `hash` is the 64 lowercase hex digits of the cluster's trust bundle hash (support/trust-bundle.ts:
 * SHA-256 of the CA certificate's DER), `secret` the token itself (43 characters of base64url),
 * which the agent sends as its bearer token and of which the control plane keeps only a SHA-256.
 * The agent trusts a server only after the CA bundle it fetches hashes to `hash`, so a token is all
 * it needs to reach the right cluster, and a server that cannot show that CA is refused.
 */
import { InvalidArgumentError } from './errors.js';

export const JOIN_TOKEN_PREFIX = 'K10';

const JOIN_TOKEN = /^K10([0-9a-f]{64})::([A-Za-z0-9_-]{20,256})$/;

export interface JoinToken {
  /** Hex SHA-256 of the trust bundle the server must show. */
  caHash: string;
  /** The bearer token. */
  secret: string;
}

export function formatJoinToken(token: JoinToken): string {
  return `${JOIN_TOKEN_PREFIX}${token.caHash}::${token.secret}`;
}

/** The parts of a join token; InvalidArgumentError (field `token`) saying what shape was expected. */
export function parseJoinToken(text: string): JoinToken {
  const match = JOIN_TOKEN.exec(typeof text === 'string' ? text.trim() : '');
  if (match === null) {
    throw new InvalidArgumentError(
      'read join token: it is not K10<64 hex digits: the CA hash>::<secret>; use a token printed by `skiff token create --role join`',
      'token',
    );
  }
  return { caHash: match[1]!, secret: match[2]! };
}

/** Whether `text` has a join token's form (K10…::…); parseJoinToken checks the rest. */
export function isJoinToken(text: string): boolean {
  return text.startsWith(JOIN_TOKEN_PREFIX) && text.includes('::');
}
