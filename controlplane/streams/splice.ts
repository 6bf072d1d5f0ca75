/**
 * Splices a user's pod stream call to the agent's session call: frames pass as wire bytes both
 * ways, never decoded except the agent's last (`end`, recognised by its first byte), each
 * direction under flow control. A side that does not read makes the other side's reading stop:
 * the writer's buffer (grpc-js: 16 frames) fills, the reader is paused, its buffer (16 frames)
 * fills, and HTTP/2's windows stop the sender. With frames of at most MAX_FRAME_BYTES (refused
 * above it when they arrive), a session holds a bounded amount whatever either side does.
 *
 * It ends once, on the first of: the agent's `end` frame (passed on, the user's call ended with OK,
 * or with the error it carries), either call failing or being cancelled (the other ends with
 * UNAVAILABLE or CANCELLED), or `abort` (the control plane is stopping).
 */
import { EventEmitter } from 'node:events';
import { UnavailableError, type SkiffError } from '../../proto/errors.js';
import { decodeFrame, errorOfEnd, isEndFrame } from '../../proto/pod-streams.js';

/** The parts of a grpc-js server call the splice uses (ServerDuplexStream, ServerWritableStream). */
export interface FrameCall extends EventEmitter {
  write(frame: Buffer): boolean;
  end(): void;
  pause?(): void;
  resume?(): void;
}

/** How a splice ended: with what error for the user (undefined: OK), and whose doing. */
export interface SpliceEnd {
  error?: SkiffError;
  by: 'agent' | 'user' | 'abort';
}

export interface SpliceSides {
  /** The user's call; `readable` when its frames go to the agent (Exec, Attach, PortForward). */
  user: FrameCall;
  readable: boolean;
  agent: FrameCall;
  node: string;
  /** Ends the user's call with an error (grpc-js: emit 'error' with a ServiceError). */
  failUser(error: SkiffError): void;
  /** Ends the agent's call as cancelled. */
  cancelAgent(reason: string): void;
}

/** Pipes `from` into `to` frame by frame, pausing `from` while `to` is full. */
function flow(from: FrameCall, to: FrameCall, onFrame: (frame: Buffer) => boolean): () => void {
  let waiting = false;
  const resume = (): void => {
    waiting = false;
    from.resume?.();
  };
  const data = (frame: Buffer): void => {
    if (!onFrame(frame)) return;
    if (!to.write(frame) && !waiting) {
      waiting = true;
      from.pause?.();
      to.once('drain', resume);
    }
  };
  from.on('data', data);
  // flowing even if the stream was read before (a first frame taken with read())
  from.resume?.();
  return () => {
    from.off('data', data);
    to.off('drain', resume);
  };
}

export function splice(sides: SpliceSides, abort?: AbortSignal): Promise<SpliceEnd> {
  const { user, agent, node } = sides;
  return new Promise<SpliceEnd>((resolve) => {
    let ended = false;
    const cleanups: Array<() => void> = [];
    const finish = (end: SpliceEnd): void => {
      if (ended) return;
      ended = true;
      for (const cleanup of cleanups) cleanup();
      if (end.by === 'agent') {
        // the agent is done (or gone): the user's call ends after what was passed on
        if (end.error) sides.failUser(end.error);
        else user.end();
        agent.end();
      } else if (end.by === 'user') {
        sides.cancelAgent('the client went away');
      } else {
        sides.failUser(end.error!);
        sides.cancelAgent('the control plane is stopping');
      }
      resolve(end);
    };
    const on = (emitter: EventEmitter, event: string, handler: () => void): void => {
      emitter.on(event, handler);
      cleanups.push(() => emitter.off(event, handler));
    };
    cleanups.push(
      flow(agent, user, (frame) => {
        if (!isEndFrame(frame)) return true;
        const { end } = decodeFrame(frame);
        const error = end ? errorOfEnd(end) : undefined;
        if (error === undefined) user.write(frame);
        finish({ by: 'agent', ...(error ? { error } : {}) });
        return false;
      }),
    );
    if (sides.readable) cleanups.push(flow(user, agent, () => true));
    const agentGone = (why: string) => (): void =>
      finish({
        by: 'agent',
        error: new UnavailableError(`pod stream: the agent of node ${node} ${why}`, node),
      });
    // a half-close without the end frame, an error, a cancel: the agent did not finish the stream
    on(agent, 'end', agentGone('ended the session without its end'));
    on(agent, 'error', agentGone('failed during the session'));
    on(agent, 'cancelled', agentGone('went away during the session'));
    on(user, 'cancelled', () => finish({ by: 'user' }));
    on(user, 'error', () => finish({ by: 'user' }));
    if (abort) {
      const stop = (): void =>
        finish({
          by: 'abort',
          error: new UnavailableError(
            'pod stream: the control plane is shutting down; open the stream again',
          ),
        });
      if (abort.aborted) return stop();
      abort.addEventListener('abort', stop, { once: true });
      cleanups.push(() => abort.removeEventListener('abort', stop));
    }
  });
}
