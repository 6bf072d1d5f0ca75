/**
 * API tokens made, listed and revoked through skiff.v1.Admin (`skiff token`): what the records in
 * the TokenStore may say, checked here. A token is 32 random bytes shown once; its record keeps the
 * hash, the role and, for one made with a lifetime, when it expires (auth.ts refuses it after).
 * A join token is shown as `K10<CA hash>::<token>` (proto/join-token.ts): the agent that holds it
 * checks the cluster's CA against the hash before it trusts the server; it needs a cluster CA.
 */
import { FailedPreconditionError, InvalidArgumentError, NotFoundError } from '../../proto/errors.js';
import { ADMIN_TOKEN_NAME } from './admin-token.js';
import {
  ROLES,
  generateToken,
  hashToken,
  type Authenticator,
  type Principal,
  type Role,
  type TokenRecord,
  type TokenStore,
} from './auth.js';
import { checkDns1123Label } from './validation/names.js';
import { createHash, randomBytes } from 'node:crypto';
import { formatJoinToken } from '../../proto/join-token.js';

/** What a token is, without the token. */
export interface TokenInfo {
  name: string;
  role: Role;
  createdAt: string;
  /** Empty: never expires. */
  expiresAt: string;
}

export interface TokenRequest {
  /** Empty: `<role>-<random>`. */
  name: string;
  role: string;
  /** 0: never expires. */
  ttlSeconds: number;
}

/** Ten years: a lifetime past it is a typo, not a plan (0 means no expiry). */
const MAX_TTL_SECONDS = 10 * 365 * 24 * 3600;

function infoOf(record: TokenRecord): TokenInfo {
  return {
    name: record.name,
    role: record.role,
    createdAt: record.createdAt,
    expiresAt: record.expiresAt ?? '',
  };
}

export class TokenAdmin {
  constructor(
    private readonly tokens: TokenStore,
    private readonly auth: Authenticator,
    private readonly now: () => Date = () => new Date(),
    /** The trust bundle's hash join tokens carry; undefined: the API has no CA (plaintext). */
    private readonly trustBundleHash?: string,
  ) {}

  async create(request: TokenRequest): Promise<{ info: TokenInfo; token: string }> {
    if (!ROLES.includes(request.role as Role)) {
      throw new InvalidArgumentError(
        `create token: role ${JSON.stringify(request.role)} is not one of ${ROLES.join(', ')}`,
        'role',
      );
    }
    const role = request.role as Role;
    if (role === 'join' && this.trustBundleHash === undefined) {
      throw new FailedPreconditionError(
        "create token: a join token carries the cluster CA's hash, and this control plane has no cluster CA (it serves plaintext); start it with --cluster-ca-dir",
      );
    }
    if (
      !Number.isSafeInteger(request.ttlSeconds) ||
      request.ttlSeconds < 0 ||
      request.ttlSeconds > MAX_TTL_SECONDS
    ) {
      throw new InvalidArgumentError(
        `create token: ttl ${request.ttlSeconds} s is not a whole number of seconds from 0 (never expires) to ${MAX_TTL_SECONDS}`,
        'ttl',
      );
    }
    const name = request.name || `${role}-${randomBytes(4).toString('hex')}`;
    const nameProblem = checkDns1123Label(name);
    if (nameProblem !== undefined) {
      throw new InvalidArgumentError(`create token: name ${JSON.stringify(name)}: ${nameProblem}`, 'name');
    }
    const token = generateToken();
    const created = this.now();
    const record: TokenRecord = {
      name,
      role,
      sha256: hashToken(token),
      createdAt: created.toISOString(),
      ...(request.ttlSeconds > 0
        ? { expiresAt: new Date(created.getTime() + request.ttlSeconds * 1000).toISOString() }
        : {}),
    };
    if (!(await this.tokens.createIfAbsent(record))) {
      throw new FailedPreconditionError(
        `create token: a token named "${name}" exists; choose another name, or revoke it first (skiff token revoke ${name})`,
      );
    }
    await this.auth.load();
    return {
      info: infoOf(record),
      token: role === 'join' ? formatJoinToken({ caHash: this.trustBundleHash!, secret: token }) : token,
    };
  }

  /**
   * The registry pull token of a node (role pull: images from the cluster registry, nothing of the
   * API), made again at each call, the node's previous one revoked: an agent asks at start and
   * before it expires, over mutual TLS (skiff.v1.Nodes IssueRegistryToken).
   */
  async issueNodePullToken(
    node: string,
    ttlSeconds = 24 * 3600,
  ): Promise<{ info: TokenInfo; token: string }> {
    const name = `node-pull-${createHash('sha256').update(node).digest('hex').slice(0, 16)}`;
    await this.tokens.delete(name);
    return this.create({ name, role: 'pull', ttlSeconds });
  }

  async list(): Promise<TokenInfo[]> {
    const records = await this.tokens.list();
    return records.map(infoOf).sort((a, b) => a.name.localeCompare(b.name));
  }

  /** Refuses the caller's own token: an admin would lock themselves out mid-call. */
  async revoke(name: string, caller: Principal): Promise<TokenInfo> {
    if (name === caller.name) {
      throw new FailedPreconditionError(
        `revoke token "${name}": it is the token of this call; revoke it with another admin token${name === ADMIN_TOKEN_NAME ? ' (create one first: skiff token create --role admin)' : ''}`,
      );
    }
    const record = (await this.tokens.list()).find((each) => each.name === name);
    if (record === undefined || !(await this.tokens.delete(name))) {
      throw new NotFoundError(`revoke token "${name}": no such token (skiff token list shows them)`);
    }
    // this control plane stops accepting it now; others at their next reload
    await this.auth.load();
    return infoOf(record);
  }
}
