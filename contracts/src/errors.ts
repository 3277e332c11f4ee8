/** Machine-readable error codes carried in every 4xx/5xx body as `error.code`. */
export const ErrorCode = {
  ValidationFailed: 'validation_failed',
  Unauthorized: 'unauthorized',
  /** The key is valid but of another role than the route needs (the message names the role). */
  Forbidden: 'forbidden',
  NotFound: 'not_found',
  IdempotencyConflict: 'idempotency_conflict',
  InvalidState: 'invalid_state',
  StaleLease: 'stale_lease',
  CompletionMismatch: 'completion_mismatch',
  JobCancelled: 'job_cancelled',
  WorkerNotRegistered: 'worker_not_registered',
  /** The worker id was registered again by another process (a newer epoch): this one must stop. */
  StaleRegistration: 'stale_registration',
  /** An operator revoked the worker: its token no longer works and its id cannot register. */
  WorkerRevoked: 'worker_revoked',
  PayloadTooLarge: 'payload_too_large',
  Internal: 'internal_error',
} as const;
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

export interface FieldProblem {
  /** Dotted path of the offending field, e.g. `input.audio` or `requirements.minVramGb`. */
  field: string;
  problems: string[];
}

export interface ErrorBody {
  error: { code: ErrorCode; message: string; fields?: FieldProblem[] };
}

/** Error codes a worker reports when a job fails; free-form codes are allowed too. */
export const JobErrorCode = {
  Cancelled: 'cancelled',
  LeaseLost: 'lease_lost',
  Timeout: 'timeout',
  TooManyLeaseLosses: 'too_many_lease_losses',
  AttemptsExhausted: 'attempts_exhausted',
  UnsupportedKind: 'unsupported_kind',
  Internal: 'internal_error',
} as const;
