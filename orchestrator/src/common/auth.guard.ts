import { createHash, timingSafeEqual } from 'node:crypto';
import { Injectable, type CanActivate, type ExecutionContext } from '@nestjs/common';
import type { FastifyRequest } from 'fastify';
import { ErrorCode } from '@avatar-fleet/contracts';
import { OrchestratorConfig } from '../config/orchestrator.config';
import { ApiError } from './api-error';

/** The caller's key as sent: `Authorization: Bearer <key>` or `X-Api-Key: <key>`. */
function presentedKey(req: FastifyRequest): string | null {
  const auth = req.headers.authorization;
  if (typeof auth === 'string' && auth.startsWith('Bearer ')) return auth.slice(7).trim();
  const header = req.headers['x-api-key'];
  return typeof header === 'string' ? header.trim() : null;
}

function digest(value: string): Buffer {
  return createHash('sha256').update(value).digest();
}

// Names the headers to send, never what was sent: a product key sent to the worker API must not come back.
const unauthorized = () =>
  new ApiError(401, ErrorCode.Unauthorized, 'missing or invalid API key: send Authorization: Bearer <key> (or X-Api-Key: <key>)');

/** Product API: the key's name becomes the request's owner; jobs are visible only to their owner. */
@Injectable()
export class ApiKeyGuard implements CanActivate {
  private readonly keys: { digest: Buffer; owner: string }[];

  constructor(config: OrchestratorConfig) {
    this.keys = [...config.apiKeys()].map(([key, owner]) => ({ digest: digest(key), owner }));
  }

  canActivate(context: ExecutionContext): boolean {
    const req = context.switchToHttp().getRequest<FastifyRequest & { owner?: string }>();
    const key = presentedKey(req);
    if (!key) throw unauthorized();
    const presented = digest(key);
    // Compare against every key, in constant time, so timing reveals neither the key nor which one matched.
    let owner: string | null = null;
    for (const k of this.keys) if (timingSafeEqual(k.digest, presented)) owner = k.owner;
    if (!owner) throw unauthorized();
    req.owner = owner;
    return true;
  }
}

/** Worker API: one shared bearer key (`INTERNAL_API_KEY`), compared in constant time. */
@Injectable()
export class InternalKeyGuard implements CanActivate {
  private readonly expected: Buffer;

  constructor(config: OrchestratorConfig) {
    this.expected = digest(config.INTERNAL_API_KEY);
  }

  canActivate(context: ExecutionContext): boolean {
    const key = presentedKey(context.switchToHttp().getRequest<FastifyRequest>());
    if (!key || !timingSafeEqual(digest(key), this.expected)) throw unauthorized();
    return true;
  }
}
