import { Catch, HttpException, Logger, type ArgumentsHost, type ExceptionFilter } from '@nestjs/common';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { ErrorCode, describeProblems, type ErrorBody } from '@avatar-fleet/contracts';

/** A refusal of fastify's: its status, its `FST_ERR_*` code, and whether JSON parsing threw it. */
type FrameworkError = { statusCode?: number; code?: string; message?: string; syntax?: boolean };

/** What fastify's own refusals are about: the header, the body or the path at fault, and why. */
function frameworkProblem(error: FrameworkError): { field: string; problem: string } {
  switch (error.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE': return { field: '(body)', problem: 'the request body is larger than this server accepts (BODY_LIMIT_BYTES)' };
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE': return { field: 'content-type', problem: 'unsupported content type: send Content-Type: application/json' };
    case 'FST_ERR_CTP_EMPTY_JSON_BODY': return { field: '(body)', problem: 'the request body is empty: send a JSON object' };
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH': return { field: 'content-length', problem: 'the body size does not match Content-Length' };
    case 'FST_ERR_BAD_URL': return { field: '(path)', problem: 'the path is not a valid URL (bad percent-encoding)' };
    case 'FST_ERR_MAX_PARAM_LENGTH': return { field: '(path)', problem: 'a path parameter is too long' };
  }
  if (error.code?.startsWith('FST_ERR_CTP') || error.syntax || error instanceof SyntaxError) {
    return { field: '(body)', problem: 'the request body is not valid JSON, or has a forbidden __proto__ or constructor.prototype key' };
  }
  return { field: '(request)', problem: error.message || 'bad request' };
}

/** Maps fastify's own client errors (bad JSON, too large, wrong content type, bad URL) to the fleet's error body. */
export function clientErrorBody(error: FrameworkError): { status: number; body: ErrorBody } | null {
  const status = error.statusCode ?? 500;
  if (status < 400 || status >= 500) return null;
  const code = status === 413 ? ErrorCode.PayloadTooLarge : ErrorCode.ValidationFailed;
  const { field, problem } = frameworkProblem(error);
  const fields = [{ field, problems: [problem] }];
  return { status, body: { error: { code, message: `invalid request: ${describeProblems(fields)}`, fields } } };
}

/** fastify's `frameworkErrors`: a path the router cannot decode or whose parameter is too long. */
export function frameworkErrorHandler(error: FrameworkError, _request: FastifyRequest, reply: FastifyReply): void {
  const mapped = clientErrorBody(error) ?? clientErrorBody({ statusCode: 400, message: error.message });
  void reply.status(mapped!.status).send(mapped!.body);
}

/** Every error leaves as an ErrorBody; anything unexpected is a 500 whose details stay in the log. */
@Catch()
export class ErrorFilter implements ExceptionFilter {
  private readonly logger = new Logger('http');

  catch(exception: unknown, host: ArgumentsHost): void {
    const reply = host.switchToHttp().getResponse<FastifyReply>();
    if (exception instanceof HttpException) {
      const status = exception.getStatus();
      const response = exception.getResponse();
      if (typeof response === 'object' && response !== null && 'error' in response && typeof response.error === 'object') {
        void reply.status(status).send(response);
        return;
      }
      // Nest's own HTTP errors: unknown route, and fastify's refusals (a body it could not parse),
      // which Nest wraps with the fastify error as the cause.
      const source = exception.cause instanceof Error ? exception.cause : exception;
      const refusal = { statusCode: status, message: source.message, code: (source as FrameworkError).code, syntax: source instanceof SyntaxError };
      const body: ErrorBody =
        status === 404 ? { error: { code: ErrorCode.NotFound, message: exception.message } }
        : status === 401 ? { error: { code: ErrorCode.Unauthorized, message: exception.message } }
        : clientErrorBody(refusal)?.body
          ?? { error: { code: ErrorCode.Internal, message: 'internal error; see the orchestrator log' } };
      // On an oversized body fastify asks to close the connection, which resets it while the client is
      // still sending: the client saw a broken pipe instead of this 413. Left open, Node reads and drops
      // the rest of the body (within the server's requestTimeout) and the answer arrives.
      if (status === 413) reply.removeHeader('connection');
      void reply.status(status).send(body);
      return;
    }
    const mapped = clientErrorBody(exception as FrameworkError);
    if (mapped) {
      void reply.status(mapped.status).send(mapped.body);
      return;
    }
    this.logger.error(exception instanceof Error ? (exception.stack ?? exception.message) : String(exception));
    void reply.status(500).send({ error: { code: ErrorCode.Internal, message: 'internal error; see the orchestrator log' } });
  }
}
