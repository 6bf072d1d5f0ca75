/**
 * NodeTunnels: which node's agent holds a tunnel to this control plane, and the sessions asked of
 * agents that have not yet answered.
 *
 *   user call ─► open(node, request) ─► id + one-time secret ─► SessionRequest down node's tunnel
 *                 │                                                        │
 *                 │   (the agent, with its own credentials)                ▼
 *                 └◄── resolves with the agent's call ◄── claim(id, secret, principal) ◄── SessionStream
 *
 * A session is claimed once, by a caller that presents its secret (compared as SHA-256 digests, in
 * constant time) and may serve the session's node (auth.ts authorizeNode); until then it waits at
 * most `openTimeoutMs`, and the user's call going away withdraws it. Nothing here does I/O:
 * tunnels are given as `send` functions, randomness as a parameter.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { NotFoundError, PermissionDeniedError, UnavailableError } from '../../proto/errors.js';
import type { PodLogsOptions, PodStreamOpen } from '../../proto/pod-streams.js';
import { authorizeNode, type Principal } from '../api/auth.js';

export type SessionKind = 'logs' | 'exec' | 'attach' | 'port-forward';

/** What the control plane asks of an agent (api.proto SessionRequest). */
export interface SessionRequest {
  id: string;
  secret: string;
  kind: SessionKind;
  namespace: string;
  pod: string;
  podUid: string;
  container: string;
  logs?: PodLogsOptions;
  stream?: PodStreamOpen;
}

/** A node's open tunnel, as the transport (pod-streams.ts) gives it. */
export interface Tunnel {
  node: string;
  principal: Principal;
  /** Sends a request down the tunnel; false when it is gone. */
  send(request: SessionRequest): boolean;
  /** Tells the agent that a session's user went away. */
  cancel(id: string): void;
  /** Ends the tunnel (another replaced it). */
  close(reason: Error): void;
}

interface Pending<C> {
  node: string;
  secretHash: Buffer;
  claimed: (call: C) => void;
}

export interface NodeTunnelsOptions {
  /** How long a session waits for its agent; default 10 s. */
  openTimeoutMs?: number;
  random?: (bytes: number) => Buffer;
}

const sha256 = (text: string): Buffer => createHash('sha256').update(text, 'utf8').digest();

/** `C`: the agent's call, as the transport hands it over (a grpc-js duplex stream). */
export class NodeTunnels<C> {
  private readonly tunnels = new Map<string, Tunnel>();
  private readonly pending = new Map<string, Pending<C>>();
  private readonly openTimeoutMs: number;
  private readonly random: (bytes: number) => Buffer;

  constructor(options: NodeTunnelsOptions = {}) {
    this.openTimeoutMs = options.openTimeoutMs ?? 10_000;
    this.random = options.random ?? randomBytes;
  }

  /**
   * Makes `tunnel` the one that serves its node; an older one of that node is closed (an agent
   * that reconnects after a network cut replaces its half-dead tunnel). Returns what unregisters
   * it, which leaves a newer one alone.
   */
  register(tunnel: Tunnel): () => void {
    const older = this.tunnels.get(tunnel.node);
    this.tunnels.set(tunnel.node, tunnel);
    older?.close(
      new UnavailableError(`tunnel of node ${tunnel.node}: a newer tunnel of the node replaced this one`),
    );
    return () => {
      if (this.tunnels.get(tunnel.node) === tunnel) this.tunnels.delete(tunnel.node);
    };
  }

  /** The nodes with a tunnel now. */
  nodes(): string[] {
    return [...this.tunnels.keys()];
  }

  /** Sessions asked and not yet answered (what an agent that never answers leaves, until its timeout). */
  get waiting(): number {
    return this.pending.size;
  }

  /**
   * Asks `node`'s agent for a session; resolves with its call once it connected and presented the
   * secret. UnavailableError naming the node when it has no tunnel or does not answer in time; a
   * `signal` that aborts withdraws the request (rejecting with its reason).
   */
  open(
    node: string,
    request: Omit<SessionRequest, 'id' | 'secret'>,
    what: string,
    signal?: AbortSignal,
  ): Promise<{ call: C; id: string }> {
    const tunnel = this.tunnels.get(node);
    if (tunnel === undefined) {
      return Promise.reject(
        new UnavailableError(
          `${what}: node ${node} has no agent connected to this control plane (no tunnel); check that skiff agent runs there and reaches the control plane`,
          node,
        ),
      );
    }
    const id = this.random(16).toString('hex');
    const secret = this.random(32).toString('base64url');
    return new Promise<{ call: C; id: string }>((resolve, reject) => {
      const done = (): void => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        this.pending.delete(id);
      };
      const timer = setTimeout(() => {
        done();
        reject(
          new UnavailableError(
            `${what}: the agent of node ${node} did not open the session within ${this.openTimeoutMs / 1000} s`,
            node,
          ),
        );
      }, this.openTimeoutMs);
      const onAbort = (): void => {
        done();
        reject(signal?.reason);
      };
      if (signal?.aborted) return onAbort();
      signal?.addEventListener('abort', onAbort, { once: true });
      this.pending.set(id, {
        node,
        secretHash: sha256(secret),
        claimed: (call) => {
          done();
          resolve({ call, id });
        },
      });
      if (!tunnel.send({ ...request, id, secret })) {
        done();
        reject(new UnavailableError(`${what}: the tunnel of node ${node} closed`, node));
      }
    });
  }

  /** Tells `node`'s agent that session `id`'s user went away (its tunnel, if it still has one). */
  cancel(node: string, id: string): void {
    this.tunnels.get(node)?.cancel(id);
  }

  /**
   * Hands `call` to the session `id` waits for, once: NotFoundError when no session of that id
   * waits (never asked, answered already, or given up), PermissionDeniedError for a wrong secret or
   * a caller that may not serve the session's node (the session keeps waiting for its agent).
   */
  claim(id: string, secret: string, principal: Principal, call: C): void {
    const pending = this.pending.get(id);
    if (pending === undefined)
      throw new NotFoundError(`session ${id.slice(0, 8)}…: no session of that id waits for its agent`);
    const presented = sha256(secret);
    if (!timingSafeEqual(presented, pending.secretHash))
      throw new PermissionDeniedError(`session ${id.slice(0, 8)}…: the session secret does not match`);
    authorizeNode(principal, pending.node);
    pending.claimed(call);
  }
}
