/**
 * HTTP/2 receive windows for grpc-js's server, which takes no option for them: node:http2's
 * defaults are 64 KiB per stream and per connection, so a client could have at most 64 KiB in
 * flight to the control plane, on one call or on all of its calls at once. A pod stream's upload
 * (`port-forward`, an agent's output on its session stream) then ran at 64 KiB per round trip
 * (~25 MB/s on a loaded machine). What a paused call holds is at most its stream window.
 *
 * grpc-js keeps the options it gives http2.createServer in `commonServerOptions` and its servers in
 * `http2Servers`: this sets the stream window there before the bind and the connection window on
 * every session after it. Should a grpc-js release rename them, widenBeforeBind throws (a unit
 * test calls both on a real server), rather than the control plane silently going slow.
 */
import type { EventEmitter } from 'node:events';
import type { Server } from '@grpc/grpc-js';
import { InternalError } from '../../proto/errors.js';

interface GrpcServerInternals {
  commonServerOptions?: { settings?: Record<string, unknown> };
  http2Servers?: Map<EventEmitter, unknown>;
}

/** Each stream's receive window (SETTINGS_INITIAL_WINDOW_SIZE the server sends). Call before bindAsync. */
export function widenStreamWindows(server: Server, streamWindowBytes: number): void {
  const internals = server as unknown as GrpcServerInternals;
  if (internals.commonServerOptions === undefined)
    throw new InternalError(
      'grpc-js: its server no longer keeps commonServerOptions; see controlplane/api/grpc-windows.ts',
    );
  internals.commonServerOptions.settings = {
    ...internals.commonServerOptions.settings,
    initialWindowSize: streamWindowBytes,
  };
}

/** Each connection's receive window, from its start. Call after bindAsync. */
export function widenConnectionWindows(server: Server, connectionWindowBytes: number): void {
  const internals = server as unknown as GrpcServerInternals;
  if (internals.http2Servers === undefined)
    throw new InternalError(
      'grpc-js: its server no longer keeps http2Servers; see controlplane/api/grpc-windows.ts',
    );
  for (const http2Server of internals.http2Servers.keys()) {
    http2Server.on('session', (session: { setLocalWindowSize?(bytes: number): void }) => {
      session.setLocalWindowSize?.(connectionWindowBytes);
    });
  }
}
