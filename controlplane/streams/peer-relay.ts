/**
 * The calling side of skiff.v1.ControlPlanes RelaySession: a control plane that took a user's pod
 * stream for a node whose tunnel another control plane holds asks that one for the session, over
 * mutual TLS with its control-plane certificate (api.proto), and splices the user's call to the
 * answer as it would to an agent's SessionStream:
 *
 *   user ─► this control plane ─► RelaySession (first message RelaySessionOpen) ─► holder ─► agent
 *        ◄─ frames, raw, both ways (each leg's gRPC framing only) ◄────────────────────────┘
 *
 * One connection per peer address, made on first use and kept while calls use it (they multiplex
 * on it); one without calls for `idleMs` is closed, so control planes gone from the cluster leave
 * nothing behind. The server is verified with the cluster's trust bundle against the address's
 * host. This control plane's certificate is issued here, valid `certificateTtlMs`, and issued again
 * halfway: new connections present the new one; a connection with calls keeps its own (TLS checked
 * it once, at the handshake) and is closed when its last call ends.
 */
import { EventEmitter } from 'node:events';
import { errorMessage, UnavailableError, type SkiffError } from '../../proto/errors.js';
import { GrpcCallError, WireChannel, type WireDuplex } from '../../proto/grpc-wire-client.js';
import { ERROR_CODE_KEY, GRPC_CODE, fromGrpcError } from '../../proto/grpc-status.js';
import { MAX_FRAME_BYTES } from '../../proto/pod-streams.js';
import { messages } from '../../proto/gen/messages.js';
import type { Logger } from '../../proto/support/logger.js';
import type { SessionRequest } from './node-tunnels.js';
import type { FrameCall } from './splice.js';
import type { TunnelHolder } from './tunnel-registry.js';

export const RELAY_SESSION_PATH = '/skiff.v1.ControlPlanes/RelaySession';

export interface PeerIdentity {
  /** PEM: what peers' API certificates are verified with (the cluster's trust bundle). */
  ca: string;
  /** PEM: this control plane's certificate (CN=system:controlplane:<name>) and key. */
  cert: string;
  key: string;
}

export interface PeerRelayOptions {
  /** PEM: what peers' API certificates are verified with (the cluster's trust bundle). */
  ca: string;
  /** Issues this control plane's certificate (CN=system:controlplane:<name>) valid until `notAfter`. */
  issue(notAfter: Date): { cert: string; key: string };
  /** How long each certificate is valid; issued again halfway. Default 24 h. */
  certificateTtlMs?: number;
  /** A connection to a peer without calls this long is closed; default 2 min. */
  idleMs?: number;
  log: Logger;
}

/** A connection to one peer address, and the relay calls on it. */
interface PeerConnection {
  channel: WireChannel;
  calls: number;
  idleSince: number;
}

const DEFAULT_CERTIFICATE_TTL_MS = 24 * 60 * 60 * 1000;
const DEFAULT_IDLE_MS = 2 * 60 * 1000;

/** Sends awaiting the call before a write says "wait" (what grpc-js's own writable buffers hold). */
const MAX_PENDING_SENDS = 16;

/**
 * A client duplex call seen as splice's FrameCall: `data` for each message (raw), `end` for an OK
 * end, `error` for a failed one, `drain` once sends caught up; pause/resume stop and restart
 * reading.
 */
class RelayCall extends EventEmitter implements FrameCall {
  private pending = 0;
  private waiting = false;
  private paused = false;
  private wake: (() => void) | undefined;

  constructor(
    readonly duplex: WireDuplex,
    private readonly incoming: AsyncIterator<Buffer>,
  ) {
    super();
  }

  /** Starts passing messages on (after the first, taken by the caller). */
  start(): void {
    void (async () => {
      try {
        for (;;) {
          while (this.paused) await new Promise<void>((resolve) => (this.wake = resolve));
          const next = await this.incoming.next();
          if (next.done) break;
          this.emit('data', next.value);
        }
      } catch {
        // the call's end says why
      }
      const failure = await this.duplex.ended;
      if (failure === undefined) this.emit('end');
      else this.emit('error', failure);
    })();
  }

  write(frame: Buffer): boolean {
    this.pending++;
    void this.duplex.send(frame).then(() => {
      this.pending--;
      if (this.waiting && this.pending === 0) {
        this.waiting = false;
        this.emit('drain');
      }
    });
    if (this.pending < MAX_PENDING_SENDS) return true;
    this.waiting = true;
    return false;
  }

  end(): void {
    this.duplex.end();
  }

  pause(): void {
    this.paused = true;
  }

  resume(): void {
    this.paused = false;
    const wake = this.wake;
    this.wake = undefined;
    wake?.();
  }
}

export class PeerRelay {
  /** Connections made with the current certificate, by peer address. */
  private readonly connections = new Map<string, PeerConnection>();
  /** Connections made with an earlier certificate, closed when their last call ends. */
  private readonly retiring = new Set<PeerConnection>();
  private identity: PeerIdentity;
  private readonly renewal: NodeJS.Timeout;
  private readonly sweep: NodeJS.Timeout;

  constructor(private readonly options: PeerRelayOptions) {
    const ttlMs = options.certificateTtlMs ?? DEFAULT_CERTIFICATE_TTL_MS;
    const idleMs = options.idleMs ?? DEFAULT_IDLE_MS;
    this.identity = this.issue(ttlMs);
    this.renewal = setInterval(() => this.renew(ttlMs), ttlMs / 2);
    this.renewal.unref();
    this.sweep = setInterval(() => this.closeIdle(idleMs), Math.max(10, idleMs / 2));
    this.sweep.unref();
  }

  /** Connections to peers now open (with calls or waiting to be closed idle). */
  get openConnections(): number {
    return this.connections.size + this.retiring.size;
  }

  /**
   * Asks `holder` for the session; resolves with its call once its agent took the session, or
   * rejects with the holder's error (as the user would have had it there), or UnavailableError
   * naming the holder when it cannot be reached. `signal` aborting cancels the call.
   */
  async open(
    holder: TunnelHolder,
    node: string,
    session: Omit<SessionRequest, 'id' | 'secret'>,
    user: string,
    signal: AbortSignal,
  ): Promise<{ call: FrameCall; cancel(): void }> {
    const connection = this.connectionTo(holder.address);
    const duplex = connection.channel.duplex(RELAY_SESSION_PATH, { metadata: {} });
    connection.calls++;
    void duplex.ended.then(() => this.callEnded(connection));
    const onAbort = (): void => duplex.cancel();
    signal.addEventListener('abort', onAbort, { once: true });
    try {
      const first = messages.RelaySessionOpen.encode({
        node,
        session,
        user,
      });
      if (first.length > MAX_FRAME_BYTES)
        throw new UnavailableError(
          `relay session to control plane ${holder.controlPlane}: the session is too large`,
        );
      await duplex.send(first);
      const incoming = duplex[Symbol.asyncIterator]();
      // the holder's empty message: its agent took the session
      const accepted = await incoming.next();
      if (accepted.done) {
        const failure = await duplex.ended;
        throw (
          failure ??
          new GrpcCallError(
            GRPC_CODE.UNAVAILABLE,
            'the control plane ended the relay before the session began',
          )
        );
      }
      const call = new RelayCall(duplex, incoming);
      call.start();
      return { call, cancel: () => duplex.cancel() };
    } catch (err) {
      duplex.cancel();
      if (signal.aborted) throw signal.reason;
      throw this.describe(err, holder, node);
    } finally {
      signal.removeEventListener('abort', onAbort);
    }
  }

  /** Closes every connection to peers, and stops renewing the certificate. */
  close(): void {
    clearInterval(this.renewal);
    clearInterval(this.sweep);
    for (const connection of [...this.connections.values(), ...this.retiring]) connection.channel.close();
    this.connections.clear();
    this.retiring.clear();
  }

  private issue(ttlMs: number): PeerIdentity {
    return { ca: this.options.ca, ...this.options.issue(new Date(Date.now() + ttlMs)) };
  }

  /** A new certificate for new connections; those made with the old one retire. */
  private renew(ttlMs: number): void {
    try {
      this.identity = this.issue(ttlMs);
    } catch (err) {
      this.options.log.error(
        { err: errorMessage(err) },
        'control-plane certificate not issued again; relays to other control planes fail once it expires',
      );
      return;
    }
    for (const connection of this.connections.values()) {
      if (connection.calls === 0) connection.channel.close();
      else this.retiring.add(connection);
    }
    this.connections.clear();
    this.options.log.info('control-plane certificate issued again');
  }

  private callEnded(connection: PeerConnection): void {
    connection.calls--;
    connection.idleSince = Date.now();
    if (connection.calls === 0 && this.retiring.delete(connection)) connection.channel.close();
  }

  /** Closes the connections that had no call for `idleMs`. */
  private closeIdle(idleMs: number): void {
    const now = Date.now();
    for (const [address, connection] of this.connections)
      if (connection.calls === 0 && now - connection.idleSince >= idleMs) {
        connection.channel.close();
        this.connections.delete(address);
      }
  }

  private connectionTo(address: string): PeerConnection {
    let connection = this.connections.get(address);
    if (connection === undefined) {
      connection = {
        channel: new WireChannel(address, {
          maxReceiveBytes: MAX_FRAME_BYTES + 1024,
          keepaliveMs: 30_000,
          keepaliveTimeoutMs: 10_000,
          tls: { ca: this.identity.ca, cert: this.identity.cert, key: this.identity.key },
        }),
        calls: 0,
        idleSince: Date.now(),
      };
      this.connections.set(address, connection);
    }
    return connection;
  }

  /** The holder's own refusal as it is; a transport failure as UnavailableError naming the holder. */
  private describe(err: unknown, holder: TunnelHolder, node: string): SkiffError {
    const error = fromGrpcError(err, holder.address);
    // an error the holder sent (its skiff code in the trailers) is the user's; one of the way there is ours
    const fromHolder = err instanceof GrpcCallError && err.metadata.get(ERROR_CODE_KEY).length > 0;
    if (error instanceof UnavailableError && !fromHolder)
      return new UnavailableError(
        `relay a session for node ${node} to control plane ${holder.controlPlane} at ${holder.address}, which holds the node's tunnel: ${errorMessage(error)}`,
        holder.address,
        { cause: err },
      );
    return error;
  }
}
