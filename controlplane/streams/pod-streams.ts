/**
 * The control plane's side of pod streams: skiff.v1.Api's Logs, Exec, Attach and PortForward,
 * and skiff.v1.Nodes (AgentTunnel, SessionStream), over NodeTunnels and splice.
 *
 *   user call ─► authenticate, authorize (logs: view; exec, attach, port-forward: edit/admin)
 *             ─► first frame: open (Exec, Attach, PortForward; Logs: the request)
 *             ─► the pod (its node, its uid) ─► the container (pod-container.ts)
 *             ─► NodeTunnels.open(node) ─► SessionRequest down the node's tunnel
 *             ◄─ the agent's SessionStream (claimed with the session's secret)
 *             ─► splice(user, agent) until the agent's end, or either side goes
 *
 * With several control planes, the node's tunnel may be another's: the registry in etcd
 * (tunnel-registry.ts) names it, and the session goes there (peer-relay.ts, skiff.v1.ControlPlanes
 * RelaySession, mutual TLS with this control plane's certificate), which opens it on its tunnel
 * and splices as above, passing the agent's end frame on as it is. The user's token and role are
 * checked here only; the holder trusts the calling control plane and logs the user it names. The
 * control plane the user called logs every session it starts with its user, local or relayed.
 *
 * Limits: a frame of at most MAX_FRAME_BYTES (the call fails above it), `maxStreamsPerToken`
 * streams at once per token (RESOURCE_EXHAUSTED beyond), the first frame within 10 s. Errors go
 * through the one conversion (grpc-errors.ts), as the rest of the API's.
 */
import * as grpc from '@grpc/grpc-js';
import {
  FailedPreconditionError,
  InternalError,
  InvalidArgumentError,
  ResourceExhaustedError,
  SkiffError,
  UnauthenticatedError,
  UnavailableError,
  errorMessage,
} from '../../proto/errors.js';
import type { Pod } from '../../proto/gen/types.js';
import { messages, services } from '../../proto/gen/messages.js';
import { grpcServiceDefinition } from '../../proto/grpc-service.js';
import {
  MAX_FRAME_BYTES,
  SESSION_ID_KEY,
  SESSION_SECRET_KEY,
  decodeFrame,
  logsOptionsOf,
  type PodStreamOpen,
} from '../../proto/pod-streams.js';
import type { Logger } from '../../proto/support/logger.js';
import type { WireMessage } from '../../proto/wire/message-type.js';
import {
  authorize,
  authorizeNode,
  controlPlaneNameOf,
  type Authenticator,
  type Principal,
  type Verb,
} from '../api/auth.js';
import { toServiceError } from '../api/grpc-errors.js';
import type { ApiMetrics } from '../api/metrics.js';
import { checkDns1123Subdomain } from '../api/validation/names.js';
import { NodeTunnels, type SessionKind, type SessionRequest } from './node-tunnels.js';
import { podContainer } from './pod-container.js';
import { splice, type FrameCall } from './splice.js';
import type { PeerRelay } from './peer-relay.js';
import type { TunnelRegistry } from './tunnel-registry.js';

type RawDuplex = grpc.ServerDuplexStream<Buffer, Buffer>;

export interface PodStreamsOptions {
  /** Reads the pod a stream is about. */
  getPod(namespace: string, name: string): Promise<Pod>;
  auth: Authenticator;
  metrics: ApiMetrics;
  log: Logger;
  /** Streams one token may hold at once; default 128. */
  maxStreamsPerToken?: number;
  /** How long a session waits for its agent; default 10 s. */
  openTimeoutMs?: number;
  /** How long a call may take to send its first frame (open, hello); default 10 s. */
  firstFrameTimeoutMs?: number;
  /**
   * With several control planes: who holds which node's tunnel (tunnel-registry.ts), and how to
   * ask another control plane for a session (peer-relay.ts). Without them: this one's tunnels only.
   */
  peers?: { registry: TunnelRegistry; relay: PeerRelay };
}

/** Api's stream methods (merged into the Api service), the Nodes service, and what stops them. */
export interface PodStreams {
  apiMethods: grpc.UntypedServiceImplementation;
  nodes: { definition: grpc.ServiceDefinition; implementation: grpc.UntypedServiceImplementation };
  tunnels: NodeTunnels<RawDuplex>;
  /** skiff.v1.ControlPlanes: RelaySession, for other control planes (served with a cluster CA). */
  controlPlanes: { definition: grpc.ServiceDefinition; implementation: grpc.UntypedServiceImplementation };
  /** Ends every tunnel and every stream (UNAVAILABLE): the control plane is stopping. */
  close(): void;
}

function header(call: { metadata: grpc.Metadata }, key: string): string | undefined {
  const value = call.metadata.get(key)[0];
  return value === undefined ? undefined : value.toString();
}

/** The first message of a call (raw or decoded), or an error when none comes in time. */
function firstMessage<T>(
  call: grpc.ServerDuplexStream<T, unknown>,
  timeoutMs: number,
  what: string,
): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const done = (): void => {
      clearTimeout(timer);
      call.off('readable', readable);
      call.off('end', ended);
      call.off('cancelled', ended);
    };
    const readable = (): void => {
      const message = call.read() as T | null;
      if (message === null) return;
      done();
      resolve(message);
    };
    const ended = (): void => {
      done();
      reject(new InvalidArgumentError(`${what}: the call ended before its first message`));
    };
    const timer = setTimeout(() => {
      done();
      reject(new InvalidArgumentError(`${what}: no first message within ${timeoutMs / 1000} s`));
    }, timeoutMs);
    call.on('readable', readable);
    call.once('end', ended);
    call.once('cancelled', ended);
  });
}

/** What an open frame must hold for its kind. */
function checkOpen(open: PodStreamOpen | undefined, kind: SessionKind, what: string): PodStreamOpen {
  if (open === undefined)
    throw new InvalidArgumentError(
      `${what}: the first frame must carry open (the pod and what to do)`,
      'open',
    );
  if (!open.namespace || !open.name)
    throw new InvalidArgumentError(`${what}: open names no pod (namespace and name)`, 'open.name');
  if (kind === 'exec' && !(open.command?.length ?? 0))
    throw new InvalidArgumentError(`${what}: open gives no command to run`, 'open.command');
  if (kind === 'port-forward' && !(Number.isInteger(open.port) && open.port! >= 1 && open.port! <= 65535))
    throw new InvalidArgumentError(`${what}: open.port must be a port of the pod, 1 to 65535`, 'open.port');
  return open;
}

const SESSION_KINDS: ReadonlySet<string> = new Set<SessionKind>(['logs', 'exec', 'attach', 'port-forward']);

/** A RelaySessionOpen (api.proto), checked as far as the tunnel's send needs. */
function decodeRelayOpen(bytes: Buffer): {
  node: string;
  user: string;
  session: Omit<SessionRequest, 'id' | 'secret'>;
} {
  const message = messages.RelaySessionOpen.decode(bytes) as Record<string, unknown>;
  const node = typeof message.node === 'string' ? message.node : '';
  const invalid = node ? checkDns1123Subdomain(node) : 'is required';
  if (invalid) throw new InvalidArgumentError(`relay session: node "${node}" ${invalid}`, 'node');
  const session = (message.session ?? {}) as Record<string, unknown>;
  if (!SESSION_KINDS.has(String(session.kind)) || !session.namespace || !session.pod)
    throw new InvalidArgumentError('relay session: the session names no kind, namespace and pod', 'session');
  delete session.id;
  delete session.secret;
  return {
    node,
    user: typeof message.user === 'string' ? message.user : '',
    session: session as unknown as Omit<SessionRequest, 'id' | 'secret'>,
  };
}

export function createPodStreams(options: PodStreamsOptions): PodStreams {
  const { auth, metrics, log } = options;
  const maxPerToken = options.maxStreamsPerToken ?? 128;
  const firstFrameTimeoutMs = options.firstFrameTimeoutMs ?? 10_000;
  const tunnels = new NodeTunnels<RawDuplex>({
    ...(options.openTimeoutMs !== undefined ? { openTimeoutMs: options.openTimeoutMs } : {}),
  });
  const closing = new AbortController();
  const heldByToken = new Map<string, number>();
  const tunnelCalls = new Set<grpc.ServerDuplexStream<WireMessage, WireMessage>>();

  const fail = (err: unknown, method: string): Partial<grpc.ServiceError> => {
    const serviceError = toServiceError(err);
    if (serviceError.internal || err instanceof InternalError)
      log.error({ err, method }, 'pod stream failed with an internal error');
    return serviceError;
  };
  const codeOf = (err: unknown): string => (err instanceof SkiffError ? err.code : 'Internal');

  const hold = (principal: Principal, what: string): (() => void) => {
    const held = heldByToken.get(principal.name) ?? 0;
    if (held >= maxPerToken)
      throw new ResourceExhaustedError(
        `${what}: token "${principal.name}" already holds ${held} pod streams, the limit (${maxPerToken}); end some first`,
      );
    heldByToken.set(principal.name, held + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const left = (heldByToken.get(principal.name) ?? 1) - 1;
      if (left > 0) heldByToken.set(principal.name, left);
      else heldByToken.delete(principal.name);
    };
  };

  /**
   * One user stream from its checks to its end. `request` gives what the session asks once the
   * call is authorised (Logs: its request; the others: their first frame).
   */
  const serve = (
    method: string,
    verb: Verb,
    kind: SessionKind,
    call: RawDuplex | grpc.ServerWritableStream<WireMessage, Buffer>,
    readable: boolean,
    request: () => Promise<{
      namespace: string;
      name: string;
      container?: string;
      session: Partial<SessionRequest>;
    }>,
  ): void => {
    const started = process.hrtime.bigint();
    let observed = false;
    const observe = (code: string): void => {
      if (observed) return;
      observed = true;
      metrics.observe(method, 'Pod', code, Number(process.hrtime.bigint() - started) / 1e9);
    };
    const gone = new AbortController();
    const onCancel = (): void => gone.abort(new UnavailableError(`${method}: the client went away`));
    call.on('cancelled', onCancel);
    let release = (): void => undefined;
    void (async () => {
      try {
        const principal = await auth.authenticateCall(
          header(call, 'authorization'),
          call.getAuthContext().sslPeerCertificate,
        );
        authorize(principal, verb, `pods/${kind === 'port-forward' ? 'portforward' : kind}`);
        release = hold(principal, method);
        const asked = await request();
        const what = `${kind} pod ${asked.namespace}/${asked.name}`;
        const pod = await options.getPod(asked.namespace, asked.name);
        const node = pod.spec.nodeName;
        if (!node)
          throw new FailedPreconditionError(
            `${what}: the pod is not scheduled to a node yet (no spec.nodeName)`,
          );
        const container = kind === 'port-forward' ? '' : podContainer(pod, asked.container, what).name;
        const session = {
          kind,
          namespace: asked.namespace,
          pod: asked.name,
          podUid: pod.metadata.uid ?? '',
          container,
          ...asked.session,
        };
        const agent = await openSession(
          node,
          session,
          what,
          principal,
          AbortSignal.any([gone.signal, closing.signal]),
        );
        observe('OK');
        // the audit of who reached into which pod, on the control plane the user called (the
        // holder of a relayed session logs it too, with the user this one vouched for)
        log.info(
          {
            method,
            user: principal.name,
            pod: `${asked.namespace}/${asked.name}`,
            node,
            container,
            via: agent.via,
          },
          'pod stream started',
        );
        await splice(
          {
            user: call as unknown as FrameCall,
            readable,
            agent: agent.call,
            node,
            failUser: (error) => call.emit('error', fail(error, method)),
            cancelAgent: agent.cancel,
          },
          closing.signal,
        );
      } catch (err) {
        observe(codeOf(err));
        if (!gone.signal.aborted) call.emit('error', fail(err, method));
      } finally {
        release();
        call.off('cancelled', onCancel);
      }
    })();
  };

  /**
   * The agent's side of a session: through this control plane's tunnel of the node, or, when
   * another control plane holds it (the registry says), relayed through that one.
   */
  const openSession = async (
    node: string,
    session: Omit<SessionRequest, 'id' | 'secret'>,
    what: string,
    principal: Principal,
    signal: AbortSignal,
  ): Promise<{ call: FrameCall; cancel(reason: string): void; via: string }> => {
    const peers = options.peers;
    const holder = peers === undefined || tunnels.has(node) ? undefined : await peers.registry.holderOf(node);
    if (peers !== undefined && holder !== undefined && holder.controlPlane !== peers.registry.self) {
      const relayed = await peers.relay.open(holder, node, session, principal.name, signal);
      return { call: relayed.call, cancel: () => relayed.cancel(), via: holder.controlPlane };
    }
    const { call: agent, id } = await tunnels.open(node, session, what, signal);
    return {
      call: agent as unknown as FrameCall,
      cancel: (reason) => {
        // both ways: the call's status waits behind frames the agent has not read
        tunnels.cancel(node, id);
        agent.emit('error', { code: grpc.status.CANCELLED, details: reason });
      },
      via: 'tunnel',
    };
  };

  const duplexMethod =
    (method: string, verb: Verb, kind: SessionKind) =>
    (call: RawDuplex): void =>
      serve(method, verb, kind, call, true, async () => {
        const first = await firstMessage(call, firstFrameTimeoutMs, method);
        const open = checkOpen(decodeFrame(first).open, kind, method);
        return {
          namespace: open.namespace,
          name: open.name,
          ...(open.container ? { container: open.container } : {}),
          session: { stream: open },
        };
      });

  const apiMethods: grpc.UntypedServiceImplementation = {
    Logs: (call: grpc.ServerWritableStream<WireMessage, Buffer>) =>
      serve('Logs', 'logs', 'logs', call, false, async () => {
        const logs = logsOptionsOf(call.request);
        if (!logs.namespace || !logs.name)
          throw new InvalidArgumentError('Logs: the request names no pod (namespace and name)', 'name');
        return {
          namespace: logs.namespace,
          name: logs.name,
          ...(logs.container ? { container: logs.container } : {}),
          session: { logs },
        };
      }),
    Exec: duplexMethod('Exec', 'exec', 'exec'),
    Attach: duplexMethod('Attach', 'attach', 'attach'),
    PortForward: duplexMethod('PortForward', 'portForward', 'port-forward'),
  };

  const nodesImplementation: grpc.UntypedServiceImplementation = {
    AgentTunnel: (call: grpc.ServerDuplexStream<WireMessage, WireMessage>) => {
      let unregister = (): boolean => false;
      let node = '';
      const ended = (): void => {
        if (unregister()) options.peers?.registry.released(node);
        unregister = () => false;
        tunnelCalls.delete(call);
        if (node) log.info({ node }, 'agent tunnel closed');
      };
      call.once('cancelled', ended);
      call.once('end', () => {
        ended();
        call.end();
      });
      tunnelCalls.add(call);
      void (async () => {
        try {
          if (closing.signal.aborted)
            throw new UnavailableError('agent tunnel: the control plane is shutting down');
          const principal = await auth.authenticateCall(
            header(call, 'authorization'),
            call.getAuthContext().sslPeerCertificate,
          );
          const hello = (await firstMessage(call, firstFrameTimeoutMs, 'agent tunnel')).hello as
            { nodeName?: string } | undefined;
          const name = hello?.nodeName ?? '';
          const invalid = name ? checkDns1123Subdomain(name) : 'is required';
          if (invalid)
            throw new InvalidArgumentError(
              `agent tunnel: hello.nodeName "${name}" ${invalid}`,
              'hello.nodeName',
            );
          authorizeNode(principal, name);
          node = name;
          let open = true;
          call.once('cancelled', () => (open = false));
          unregister = tunnels.register({
            node,
            principal,
            send: (request) => {
              if (!open) return false;
              call.write({ open: request });
              return true;
            },
            cancel: (id) => {
              if (open) call.write({ cancel: id });
            },
            close: (reason) => {
              open = false;
              call.emit('error', fail(reason, 'AgentTunnel'));
            },
          });
          options.peers?.registry.held(node);
          call.write({ ready: { nodeName: node } });
          log.info({ node, principal: principal.name }, 'agent tunnel open');
          // the agent sends nothing more; what comes is drained so the call can end
          call.on('data', () => undefined);
        } catch (err) {
          ended();
          call.emit('error', fail(err, 'AgentTunnel'));
        }
      })();
    },
    SessionStream: (call: RawDuplex) => {
      void (async () => {
        try {
          const principal = await auth.authenticateCall(
            header(call, 'authorization'),
            call.getAuthContext().sslPeerCertificate,
          );
          const id = header(call, SESSION_ID_KEY);
          const secret = header(call, SESSION_SECRET_KEY);
          if (!id || !secret)
            throw new UnauthenticatedError(
              `session stream: no ${SESSION_ID_KEY} and ${SESSION_SECRET_KEY}; only an agent answering a session opens one`,
            );
          tunnels.claim(id, secret, principal, call);
          // taken: the agent starts the session's work only on this (an empty message, before
          // any frame of the user's), never for a session stream refused here
          call.write(Buffer.alloc(0));
        } catch (err) {
          call.emit('error', fail(err, 'SessionStream'));
        }
      })();
    },
  };

  const relayCalls = new Set<RawDuplex>();
  const controlPlanesImplementation: grpc.UntypedServiceImplementation = {
    RelaySession: (call: RawDuplex) => {
      const gone = new AbortController();
      const onCancel = (): void =>
        gone.abort(new UnavailableError('relay session: the calling control plane went away'));
      call.on('cancelled', onCancel);
      relayCalls.add(call);
      let peer: string | undefined;
      void (async () => {
        try {
          // a control-plane certificate of the cluster CA, verified by TLS; a bearer token is
          // never read here: the calling control plane vouches for its user, no token can
          peer = controlPlaneNameOf(call.getAuthContext().sslPeerCertificate);
          if (peer === undefined)
            throw new UnauthenticatedError(
              'relay session: only a control plane of this cluster may relay a session, over mutual TLS with its control-plane certificate (CN=system:controlplane:<name>, O=system:controlplanes); tokens and node certificates are refused',
            );
          const open = decodeRelayOpen(await firstMessage(call, firstFrameTimeoutMs, 'relay session'));
          const session = open.session;
          const what = `${session.kind} pod ${session.namespace}/${session.pod}`;
          // this control plane's tunnel only: a relay never goes on to a third
          const { call: agent, id } = await tunnels.open(
            open.node,
            session,
            what,
            AbortSignal.any([gone.signal, closing.signal]),
          );
          log.info(
            {
              controlPlane: peer,
              user: open.user,
              node: open.node,
              pod: `${session.namespace}/${session.pod}`,
              kind: session.kind,
            },
            'pod stream relayed for another control plane',
          );
          call.write(Buffer.alloc(0));
          await splice(
            {
              user: call as unknown as FrameCall,
              readable: true,
              agent: agent as unknown as FrameCall,
              node: open.node,
              passEnd: true,
              failUser: (error) => call.emit('error', fail(error, 'RelaySession')),
              cancelAgent: (reason) => {
                tunnels.cancel(open.node, id);
                agent.emit('error', { code: grpc.status.CANCELLED, details: reason });
              },
            },
            closing.signal,
          );
        } catch (err) {
          if (err instanceof UnauthenticatedError || err instanceof InvalidArgumentError)
            log.warn(
              { peer: call.getPeer(), controlPlane: peer, reason: errorMessage(err) },
              'relay session refused',
            );
          if (!gone.signal.aborted) call.emit('error', fail(err, 'RelaySession'));
        } finally {
          call.off('cancelled', onCancel);
          relayCalls.delete(call);
        }
      })();
    },
  };

  return {
    apiMethods,
    controlPlanes: {
      definition: grpcServiceDefinition(services.ControlPlanes, {
        rawRequests: ['RelaySession'],
        rawResponses: ['RelaySession'],
        maxRawRequestBytes: MAX_FRAME_BYTES,
      }),
      implementation: controlPlanesImplementation,
    },
    nodes: {
      definition: grpcServiceDefinition(services.Nodes, {
        rawRequests: ['SessionStream'],
        rawResponses: ['SessionStream'],
        maxRawRequestBytes: MAX_FRAME_BYTES,
      }),
      implementation: nodesImplementation,
    },
    tunnels,
    close() {
      closing.abort();
      for (const call of tunnelCalls) {
        call.emit(
          'error',
          fail(
            new UnavailableError('agent tunnel: the control plane is shutting down; connect again'),
            'AgentTunnel',
          ),
        );
      }
      tunnelCalls.clear();
      for (const call of relayCalls)
        call.emit(
          'error',
          fail(new UnavailableError('relay session: the control plane is shutting down'), 'RelaySession'),
        );
      relayCalls.clear();
    },
  };
}
