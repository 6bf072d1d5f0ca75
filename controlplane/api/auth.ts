/**
 * Bearer-token authentication and role-based authorisation for the API.
 *
 * Tokens are 32 random bytes, base64url. Only their SHA-256 hash is stored (with a name, a role
 * and, for tokens made with a lifetime, when they expire); a presented token is hashed and
 * compared against every stored hash in constant time.
 * Roles: `admin` and `edit` may do everything, `view` only get/list/watch/version and read pods'
 * logs (exec, attach and port-forward into a pod need edit or admin, as Kubernetes' pods/exec
 * needs create), `join` nothing but obtain a node's first certificate (node-certificates.ts),
 * `pull` nothing of the API (registry pulls only). Serving a node's pod streams (the agents'
 * tunnel) needs that node's identity.
 *
 * The Authenticator keeps the token records in memory and refreshes them from the TokenStore
 * in the background, and at most once per second on an unknown token, so an etcd outage does not
 * turn every call into UNAUTHENTICATED (the call then fails on the store, as UNAVAILABLE).
 * Headers it has verified against the current records are remembered until the records are next
 * loaded, so a client's repeated calls cost a map lookup instead of a hash each; a revoked token
 * stops working at the same refresh as before, because that refresh forgets them all.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { PermissionDeniedError, UnauthenticatedError } from '../../proto/errors.js';
import type { Logger } from '../../proto/support/logger.js';
import { NODE_GROUP_USER_PREFIX, nodeGroupNameProblem } from '../../proto/node-group.js';

export type Role = 'admin' | 'edit' | 'view' | 'join' | 'pull';
export const ROLES: readonly Role[] = ['admin', 'edit', 'view', 'join', 'pull'];

export interface TokenRecord {
  name: string;
  role: Role;
  /** Hex SHA-256 of the token. */
  sha256: string;
  createdAt: string;
  /** RFC 3339; absent: never expires. */
  expiresAt?: string;
}

/** Where token records live (etcd under `<prefix>/tokens/`). */
export interface TokenStore {
  list(): Promise<TokenRecord[]>;
  /** Stores `record` unless one with the same name exists; resolves false when it did. */
  createIfAbsent(record: TokenRecord): Promise<boolean>;
  /** Removes the record named `name`; resolves false when there was none. */
  delete(name: string): Promise<boolean>;
}

export interface Principal {
  name: string;
  /** A token's role, or `node` for a node agent's client certificate (node-authorizer.ts decides). */
  role: Role | 'node';
  /** Role node: the node's name (the certificate's CN system:node:<node>, O system:nodes). */
  node?: string;
  /**
   * Role node, instead of `node`: a node group acting for its hollow nodes <group>-<digits> (the
   * certificate's CN system:node-group:<group>, O system:nodes; proto/node-group.ts).
   */
  nodeGroup?: string;
}

/** The subject of node certificates (Kubernetes' names): CN system:node:<node>, O system:nodes. */
export const NODE_USER_PREFIX = 'system:node:';
export const NODES_GROUP = 'system:nodes';

/** What authenticateCall reads of a verified client certificate (node:tls's PeerCertificate). */
export interface PeerCertificateSubject {
  subject?: Record<string, string | string[] | undefined>;
}

const NODE_NAME = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

/** The values of one field of a certificate's subject (node:tls gives one as a string, several as an array). */
function subjectValues(peer: PeerCertificateSubject | undefined, field: string): string[] {
  const value = peer?.subject?.[field];
  return value === undefined ? [] : Array.isArray(value) ? value : [value];
}

/** The node principal of a node certificate's subject; undefined for any other certificate. */
export function nodePrincipalOf(peer: PeerCertificateSubject | undefined): Principal | undefined {
  const values = (field: string): string[] => subjectValues(peer, field);
  const [commonName, ...more] = values('CN');
  if (commonName === undefined || more.length > 0) return undefined;
  if (!values('O').includes(NODES_GROUP)) return undefined;
  if (commonName.startsWith(NODE_GROUP_USER_PREFIX)) {
    const nodeGroup = commonName.slice(NODE_GROUP_USER_PREFIX.length);
    if (nodeGroupNameProblem(nodeGroup) !== undefined) return undefined;
    return Object.freeze({ name: commonName, role: 'node' as const, nodeGroup });
  }
  if (!commonName.startsWith(NODE_USER_PREFIX)) return undefined;
  const node = commonName.slice(NODE_USER_PREFIX.length);
  if (node.length > 253 || !NODE_NAME.test(node)) return undefined;
  return Object.freeze({ name: commonName, role: 'node' as const, node });
}

/**
 * The subject of control-plane certificates: CN system:controlplane:<name>, O system:controlplanes.
 * Only a holder of the cluster CA's key makes one (each control plane, for itself, at start); node
 * certificates are always issued with the node's subject (node-certificates.ts), so no node and no
 * token holder can get one. It opens skiff.v1.ControlPlanes only: authenticateCall treats it as no
 * identity at all.
 */
export const CONTROL_PLANE_USER_PREFIX = 'system:controlplane:';
export const CONTROL_PLANES_GROUP = 'system:controlplanes';

/** The control plane's name of a control-plane certificate's subject; undefined for any other. */
export function controlPlaneNameOf(peer: PeerCertificateSubject | undefined): string | undefined {
  const values = (field: string): string[] => subjectValues(peer, field);
  const [commonName, ...more] = values('CN');
  if (commonName === undefined || more.length > 0 || !commonName.startsWith(CONTROL_PLANE_USER_PREFIX))
    return undefined;
  const organizations = values('O');
  if (organizations.length !== 1 || organizations[0] !== CONTROL_PLANES_GROUP) return undefined;
  const name = commonName.slice(CONTROL_PLANE_USER_PREFIX.length);
  return /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/.test(name) && name.length <= 253 ? name : undefined;
}

export type Verb =
  | 'create'
  | 'get'
  | 'list'
  | 'update'
  | 'updateStatus'
  | 'delete'
  | 'watch'
  | 'version'
  | 'logs'
  | 'exec'
  | 'attach'
  | 'portForward';
const READ_VERBS: ReadonlySet<Verb> = new Set(['get', 'list', 'watch', 'version', 'logs']);

/** The prefix of a node's identity (a node's client certificate names it system:node:<name>). */
export const NODE_IDENTITY_PREFIX = 'system:node:';

export function generateToken(): string {
  return randomBytes(32).toString('base64url');
}

export function hashToken(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('hex');
}

/** The token in an `authorization` header value, or undefined when it is not `Bearer <token>`. */
export function bearerToken(header: string | undefined): string | undefined {
  const match = /^Bearer\s+(\S+)\s*$/i.exec(header ?? '');
  return match?.[1];
}

export function authorize(principal: Principal, verb: Verb, what: string): void {
  if (principal.role === 'node') {
    throw new PermissionDeniedError(`${verb} ${what}: node certificates are not accepted for this call`);
  }
  if (principal.role === 'join') {
    throw new PermissionDeniedError(
      `${verb} ${what}: token "${principal.name}" has role join, which may only obtain a node's certificate (skiff agent --token); use an admin, edit or view token`,
    );
  }
  if (principal.role === 'pull') {
    throw new PermissionDeniedError(
      `${verb} ${what}: token "${principal.name}" has role pull, which may only pull images from the cluster registry; use a view, edit or admin token`,
    );
  }
  if (principal.role === 'view' && !READ_VERBS.has(verb)) {
    throw new PermissionDeniedError(
      `${verb} ${what}: token "${principal.name}" has role view, which may only get, list, watch and read logs; use an edit or admin token`,
    );
  }
}

/**
 * Whether `principal` may serve node `nodeName`'s pod streams (open its tunnel, answer its
 * sessions). A node identity (`system:node:<name>`, what mutual TLS will present) serves its own
 * node only; until then agents use an API token, and only an admin token may claim a node: an
 * edit token must not be able to pose as a node and receive what users type into its pods.
 */
export function authorizeNode(principal: Principal, nodeName: string): void {
  // a node certificate's identity (role node); a token is never a node, whatever its name
  if (principal.role === 'node') {
    if (principal.nodeGroup !== undefined)
      throw new PermissionDeniedError(
        `serve node ${nodeName}: node group ${principal.nodeGroup} runs hollow nodes, which serve no pod streams`,
      );
    const own = principal.node ?? principal.name.slice(NODE_IDENTITY_PREFIX.length);
    if (own !== nodeName)
      throw new PermissionDeniedError(
        `serve node ${nodeName}: the caller is node ${own}, which may serve only its own pods`,
      );
    return;
  }
  if (principal.role !== 'admin')
    throw new PermissionDeniedError(
      `serve node ${nodeName}: token "${principal.name}" has role ${principal.role}; an agent needs its node's identity or an admin token`,
    );
}

export interface AuthenticatorOptions {
  store: TokenStore;
  log: Logger;
  now?: () => number;
  /** Refresh the cached records at least this often. */
  refreshMs?: number;
}

/** Verified headers remembered at most; beyond it the memory is cleared, not grown. */
const MAX_VERIFIED_HEADERS = 1024;

export class Authenticator {
  private records: Array<{ name: string; role: Role; hash: Buffer; expiresAtMs: number }> = [];
  /** `authorization` header value → its principal under `records`; emptied whenever they change. */
  private verified = new Map<string, { principal: Principal; expiresAtMs: number }>();
  private loadedAt = -Infinity;
  /** When the last load began, successful or not: refreshes are at most one a second. */
  private attemptedAt = -Infinity;
  private refreshing: Promise<void> | undefined;
  private readonly now: () => number;
  private readonly refreshMs: number;

  constructor(private readonly options: AuthenticatorOptions) {
    this.now = options.now ?? Date.now;
    this.refreshMs = options.refreshMs ?? 30_000;
  }

  /** Loads the records; call once at start-up so the first request needs no etcd round trip. */
  async load(): Promise<void> {
    this.attemptedAt = this.now();
    const records = await this.options.store.list();
    this.records = records.map((r) => ({
      name: r.name,
      role: r.role,
      hash: Buffer.from(r.sha256, 'hex'),
      expiresAtMs: r.expiresAt ? Date.parse(r.expiresAt) : Infinity,
    }));
    this.verified = new Map();
    this.loadedAt = this.now();
  }

  private async refresh(): Promise<void> {
    this.refreshing ??= this.load()
      .catch((err: unknown) =>
        this.options.log.warn({ err }, 'refresh api tokens failed; using the cached ones'),
      )
      .finally(() => {
        this.refreshing = undefined;
      });
    await this.refreshing;
  }

  private match(hash: Buffer): { principal: Principal; expiresAtMs: number } | undefined {
    let found: { principal: Principal; expiresAtMs: number } | undefined;
    for (const record of this.records) {
      // Compare against every record so the time taken says nothing about which one matched.
      if (record.hash.length === hash.length && timingSafeEqual(record.hash, hash) && !found) {
        found = {
          principal: Object.freeze({ name: record.name, role: record.role }),
          expiresAtMs: record.expiresAtMs,
        };
      }
    }
    return found;
  }

  /** An expired token is refused with when it expired: only its holder can present it. */
  private unexpired(found: { principal: Principal; expiresAtMs: number }, now: number): Principal {
    if (now >= found.expiresAtMs) {
      throw new UnauthenticatedError(
        `authenticate request: the bearer token "${found.principal.name}" expired at ${new Date(found.expiresAtMs).toISOString()}; ask an admin for a new one (skiff token create)`,
      );
    }
    return found.principal;
  }

  /**
   * The principal of a call: a node certificate (verified by TLS against the cluster CA) makes a
   * node; anything else is the bearer token's. A certificate that is not a node's counts for
   * nothing, so a call with one and no token is refused naming it.
   */
  async authenticateCall(
    header: string | undefined,
    peer: PeerCertificateSubject | undefined,
  ): Promise<Principal> {
    const node = nodePrincipalOf(peer);
    if (node !== undefined) return node;
    if (peer?.subject !== undefined && header === undefined) {
      const subject = Object.entries(peer.subject)
        .map(([key, value]) => `${key}=${String(value)}`)
        .join(', ');
      throw new UnauthenticatedError(
        `authenticate request: the client certificate (${subject}) is not a node's (CN=${NODE_USER_PREFIX}<node>, O=${NODES_GROUP}) and no bearer token came with it`,
      );
    }
    return this.authenticate(header);
  }

  /** The principal for an `authorization` header value; UnauthenticatedError when missing or unknown. */
  async authenticate(header: string | undefined): Promise<Principal> {
    const now = this.now();
    const mayRetry = now - this.attemptedAt > 1000;
    // Known tokens are served from the cache while it refreshes in the background, so a slow or
    // unreachable etcd never delays authentication of a token already seen.
    if (now - this.loadedAt > this.refreshMs && mayRetry) void this.refresh();
    const known = header === undefined ? undefined : this.verified.get(header);
    if (known) return this.unexpired(known, now);
    const token = bearerToken(header);
    if (token === undefined) {
      throw new UnauthenticatedError(
        'authenticate request: no bearer token; send "authorization: Bearer <token>" (the admin token is in <state-dir>/admin-token)',
      );
    }
    const hash = Buffer.from(hashToken(token), 'hex');
    let found = this.match(hash);
    if (!found && mayRetry) {
      await this.refresh();
      found = this.match(hash);
    }
    if (!found) {
      throw new UnauthenticatedError(
        'authenticate request: the bearer token is not valid; check the token in your client config',
      );
    }
    const principal = this.unexpired(found, now);
    if (this.verified.size >= MAX_VERIFIED_HEADERS) this.verified.clear();
    this.verified.set(header!, found);
    return principal;
  }
}
