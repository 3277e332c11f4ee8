import { STATUS_CODES } from 'node:http';
import type { Duplex } from 'node:stream';
import { ErrorCode, type FieldProblem } from './errors';
import { describeProblems } from './validation';

/**
 * A server's answer to a request Node's HTTP parser refused (a bad request line, header or framing,
 * headers over the size limit), for its `clientError` event: an ErrorBody naming the parser's reason,
 * never the request's bytes (they may hold a key). Node's own answer has no body at all.
 */
export function answerMalformedRequest(error: Error & { code?: string; reason?: string }, socket: Duplex): void {
  if (error.code === 'ECONNRESET' || socket.destroyed) return;
  const status = error.code === 'HPE_HEADER_OVERFLOW' ? 431 : error.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 408 : 400;
  const problem =
    status === 431 ? 'the request headers are larger than this server accepts'
    : status === 408 ? 'the request did not arrive in time'
    : `the HTTP request is malformed: ${error.reason ?? error.code ?? 'parse error'}`;
  const fields: FieldProblem[] = [{ field: '(request)', problems: [problem] }];
  const body = JSON.stringify({ error: { code: ErrorCode.ValidationFailed, message: `invalid request: ${describeProblems(fields)}`, fields } });
  if (socket.writable) {
    socket.write(`HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`);
  }
  socket.destroy(error);
}
