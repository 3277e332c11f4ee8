import { Injectable, SetMetadata, createParamDecorator, type CanActivate, type ExecutionContext } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import type { FastifyRequest } from 'fastify';
import { ErrorCode } from '@avatar-fleet/contracts';
import { ApiError } from '../common/api-error';
import { MetricsService } from '../observability/metrics.service';
import { CredentialsService } from './credentials.service';
import { describeRole, describeRoles, presentedKey, type AuthenticatedRequest, type Principal, type Role } from './principal';

const ROLES = 'fleet:roles';

/** The roles a controller's or route's callers may have; the route's own list wins over its controller's. */
export const Allow = (...roles: Role[]) => SetMetadata(ROLES, roles);

/** The authenticated caller of the request (set by AuthGuard). */
export const Caller = createParamDecorator((_: unknown, ctx: ExecutionContext): Principal => ctx.switchToHttp().getRequest<AuthenticatedRequest>().principal);

// Names the headers to send, never what was sent: a product key sent to the worker API must not come back.
const unauthorized = () =>
  new ApiError(401, ErrorCode.Unauthorized, 'missing or invalid API key: send Authorization: Bearer <key> (or X-Api-Key: <key>)');

/**
 * Every authenticated route: 401 without a known key, 403 naming the role the route needs when the
 * key is of another role. Which worker a worker credential may act for is checked by the route.
 */
@Injectable()
export class AuthGuard implements CanActivate {
  constructor(
    private readonly reflector: Reflector,
    private readonly credentials: CredentialsService,
    private readonly metrics: MetricsService,
  ) {}

  async canActivate(context: ExecutionContext): Promise<boolean> {
    const roles = this.reflector.getAllAndOverride<Role[] | undefined>(ROLES, [context.getHandler(), context.getClass()]);
    if (!roles) throw new Error(`${context.getClass().name}.${context.getHandler().name} has no @Allow(...)`);
    const req = context.switchToHttp().getRequest<FastifyRequest & Partial<AuthenticatedRequest>>();
    const key = presentedKey(req);
    if (!key) throw unauthorized();
    const principal = await this.credentials.resolve(key);
    if (!principal) throw unauthorized();
    if (!roles.includes(principal.role)) {
      throw new ApiError(403, ErrorCode.Forbidden, `this route needs ${describeRoles(roles)}; this request sent ${describeRole(principal.role)}`);
    }
    req.principal = principal;
    // The shared key on a route workers use: a legacy host's call (register takes the key from everyone).
    if (principal.role === 'enrolment' && roles.includes('worker')) this.metrics.legacyRequests.inc();
    return true;
  }
}
