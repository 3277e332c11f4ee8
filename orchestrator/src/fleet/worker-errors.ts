import { ErrorCode, Routes } from '@avatar-fleet/contracts';
import { ApiError } from '../common/api-error';

/** The worker API's refusals, each naming what to send instead. */

export function forbidden(message: string): ApiError {
  return new ApiError(403, ErrorCode.Forbidden, message);
}

export function revokedError(workerId: string, at: Date): ApiError {
  return new ApiError(403, ErrorCode.WorkerRevoked, `worker ${workerId} was revoked by an operator at ${at.toISOString()}; ` +
    `an operator can reinstate it (POST ${Routes.product.reinstateWorker(workerId)})`);
}

export function notRegistered(workerId: string): ApiError {
  return new ApiError(409, ErrorCode.WorkerNotRegistered, `worker ${workerId} is not registered (or has stopped): register with ` +
    `POST ${Routes.internal.register} and INTERNAL_API_KEY, body {"workerId", "provider", "mode", "kinds", "version"}, ` +
    'then send the token it returns');
}

export function tokenHolder(workerId: string): ApiError {
  return forbidden(`worker ${workerId} registered with its own token: send that token (Authorization: Bearer wkr_...), not INTERNAL_API_KEY`);
}

export function legacyRefused(): ApiError {
  return forbidden(`INTERNAL_API_KEY only registers workers here (LEGACY_WORKERS=refuse): POST ${Routes.internal.register} with ` +
    '{"workerId", "provider", "mode", "kinds", "version"}, then send the token it returns as Authorization: Bearer <token>');
}
