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
} from '../../proto/errors.js';
import type { Pod } from '../../proto/gen/types.js';
import { services } from '../../proto/gen/messages.js';
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
import { authorize, authorizeNode, type Authenticator, type Principal, type Verb } from '../api/auth.js';
import { toServiceError } from '../api/grpc-errors.js';
import type { ApiMetrics } from '../api/metrics.js';
import { checkDns1123Subdomain } from '../api/validation/names.js';
import { NodeTunnels, type SessionKind, type SessionRequest } from './node-tunnels.js';
import { podContainer } from './pod-container.js';
import { splice, type FrameCall } from './splice.js';

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
}

/** Api's stream methods (merged into the Api service), the Nodes service, and what stops them. */
export interface PodStreams {
  apiMethods: grpc.UntypedServiceImplementation;
  nodes: { definition: grpc.ServiceDefinition; implementation: grpc.UntypedServiceImplementation };
  tunnels: NodeTunnels<RawDuplex>;
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
        const { call: agent, id } = await tunnels.open(
          node,
          {
            kind,
            namespace: asked.namespace,
            pod: asked.name,
            podUid: pod.metadata.uid ?? '',
            container,
            ...asked.session,
          },
          what,
          AbortSignal.any([gone.signal, closing.signal]),
        );
        observe('OK');
        log.debug({ method, pod: `${asked.namespace}/${asked.name}`, node, container }, 'pod stream spliced');
        await splice(
          {
            user: call as unknown as FrameCall,
            readable,
            agent: agent as unknown as FrameCall,
            node,
            failUser: (error) => call.emit('error', fail(error, method)),
            cancelAgent: (reason) => {
              // both ways: the call's status waits behind frames the agent has not read
              tunnels.cancel(node, id);
              agent.emit('error', { code: grpc.status.CANCELLED, details: reason });
            },
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
      let unregister = (): void => undefined;
      let node = '';
      const ended = (): void => {
        unregister();
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

  return {
    apiMethods,
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
    },
  };
}
