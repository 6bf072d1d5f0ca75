/**
 * DNS over TCP's framing (RFC 1035 4.2.2, RFC 7766): each message preceded by its length, two bytes
 * in network order. The bytes of a message are dns-packet's to read; this only cuts the stream.
 */
import type { Socket } from 'node:net';

/** The largest message TCP can carry: what the two length bytes can say. */
export const MAX_TCP_MESSAGE = 0xffff;

/** A message with its length in front. */
export function framed(message: Buffer): Buffer {
  const out = Buffer.allocUnsafe(2 + message.length);
  out.writeUInt16BE(message.length, 0);
  message.copy(out, 2);
  return out;
}

/**
 * Calls `onMessage` with each whole message the socket brings, in order. A zero length is no DNS
 * message: the connection is closed. While the socket is paused (the reader's back-pressure) no
 * message is handed on, also not those already received; they follow on resume. What is held is
 * at most one read's bytes and a message's start.
 */
export function readTcpMessages(socket: Socket, onMessage: (message: Buffer) => void): void {
  let held: Buffer = Buffer.alloc(0);
  const deliver = () => {
    while (held.length >= 2 && !socket.isPaused()) {
      const length = held.readUInt16BE(0);
      if (length === 0) {
        socket.destroy();
        return;
      }
      if (held.length < 2 + length) break;
      const message = held.subarray(2, 2 + length);
      held = held.subarray(2 + length);
      onMessage(message);
      if (socket.destroyed) return;
    }
  };
  socket.on('data', (chunk: Buffer) => {
    held = held.length === 0 ? chunk : Buffer.concat([held, chunk]);
    deliver();
  });
  socket.on('resume', deliver);
}
