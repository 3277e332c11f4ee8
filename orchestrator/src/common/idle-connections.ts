import type { Server, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';

/**
 * Closes, when shutdown begins, every connection that has no request in flight: keep-alive
 * connections between requests, and connections opened but not yet used (undici opens a spare
 * one after a request is aborted). Node's own closeIdleConnections() skips the latter, which then
 * hold the server open until their 60 s header timeout. Connections busy with a request close after
 * its answer (main.ts sends `Connection: close` once closing).
 */
export function trackIdleConnections(server: Server): { closeIdle(): void } {
  const busy = new Map<Socket, number>();
  server.on('connection', (socket: Socket) => {
    busy.set(socket, 0);
    socket.once('close', () => busy.delete(socket));
  });
  server.on('request', (request: { socket: Socket }, response: ServerResponse) => {
    const socket = request.socket;
    busy.set(socket, (busy.get(socket) ?? 0) + 1);
    response.once('close', () => busy.set(socket, Math.max(0, (busy.get(socket) ?? 1) - 1)));
  });
  return {
    closeIdle() {
      for (const [socket, requests] of busy) if (requests === 0) socket.destroy();
    },
  };
}
