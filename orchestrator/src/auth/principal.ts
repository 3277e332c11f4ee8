import { createHash } from 'node:crypto';
import type { FastifyRequest } from 'fastify';

/**
 * Who is calling, as the presented key says:
 * - `product`: a key of API_KEYS; acts on its owner's jobs only;
 * - `operator`: a key of OPERATOR_KEYS; manages the fleet and every job;
 * - `enrolment`: INTERNAL_API_KEY; registers workers, and is a legacy host's only key;
 * - `worker`: the token a worker got when it registered, valid for that worker and epoch only.
 */
export type Principal =
  | { role: 'product'; owner: string }
  | { role: 'operator'; name: string }
  | { role: 'enrolment' }
  | { role: 'worker'; workerId: string; epoch: number };

export type Role = Principal['role'];

export type AuthenticatedRequest = FastifyRequest & { principal: Principal };

/** The caller's key as sent: `Authorization: Bearer <key>` or `X-Api-Key: <key>`. */
export function presentedKey(req: FastifyRequest): string | null {
  const auth = req.headers.authorization;
  if (typeof auth === 'string' && auth.startsWith('Bearer ')) return auth.slice(7).trim() || null;
  const header = req.headers['x-api-key'];
  return typeof header === 'string' ? header.trim() || null : null;
}

export function sha256(value: string): Buffer {
  return createHash('sha256').update(value).digest();
}

const ROLE_NAMES: Record<Role, string> = {
  product: 'a product key (API_KEYS)',
  operator: 'an operator key (OPERATOR_KEYS)',
  enrolment: 'the enrolment key (INTERNAL_API_KEY)',
  worker: 'a worker token (from register)',
};

/** "a product key (API_KEYS) or an operator key (OPERATOR_KEYS)": what a 403 says a route needs. */
export function describeRoles(roles: readonly Role[]): string {
  const names = roles.map((r) => ROLE_NAMES[r]);
  return names.length < 2 ? (names[0] ?? 'nothing') : `${names.slice(0, -1).join(', ')} or ${names.at(-1)}`;
}

export function describeRole(role: Role): string {
  return ROLE_NAMES[role];
}
