import { Catch, HttpException, Logger, type ArgumentsHost, type ExceptionFilter } from '@nestjs/common';
import type { FastifyReply } from 'fastify';
import { ErrorCode, type ErrorBody } from '@avatar-fleet/contracts';

/** Maps fastify's own client errors (bad JSON, too large, wrong content type) to the fleet's error body. */
export function clientErrorBody(error: { statusCode?: number; code?: string; message?: string }): { status: number; body: ErrorBody } | null {
  const status = error.statusCode ?? 500;
  if (status < 400 || status >= 500) return null;
  const code = status === 413 ? ErrorCode.PayloadTooLarge : ErrorCode.ValidationFailed;
  const message =
    error.code === 'FST_ERR_CTP_BODY_TOO_LARGE' ? 'request body is too large'
    : error.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE' ? 'unsupported content type: send application/json'
    : error.code === 'FST_ERR_CTP_EMPTY_JSON_BODY' ? 'request body is empty: send a JSON object'
    : error.code?.startsWith('FST_ERR_CTP') || error instanceof SyntaxError ? `request body is not valid JSON (${error.message ?? ''})`
    : /valid JSON/i.test(error.message ?? '') ? 'request body is not valid JSON (or has a forbidden __proto__/constructor key)'
    : (error.message ?? 'bad request');
  return { status, body: { error: { code, message, fields: [{ field: '(body)', problems: [message] }] } } };
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
      // Nest's own HTTP errors: unknown route, and a body fastify could not parse.
      const body: ErrorBody =
        status === 404 ? { error: { code: ErrorCode.NotFound, message: exception.message } }
        : status === 401 ? { error: { code: ErrorCode.Unauthorized, message: exception.message } }
        : clientErrorBody({ statusCode: status, message: exception.message })?.body
          ?? { error: { code: ErrorCode.Internal, message: 'internal error; see the orchestrator log' } };
      void reply.status(status).send(body);
      return;
    }
    const mapped = clientErrorBody(exception as { statusCode?: number; code?: string; message?: string });
    if (mapped) {
      void reply.status(mapped.status).send(mapped.body);
      return;
    }
    this.logger.error(exception instanceof Error ? (exception.stack ?? exception.message) : String(exception));
    void reply.status(500).send({ error: { code: ErrorCode.Internal, message: 'internal error; see the orchestrator log' } });
  }
}
