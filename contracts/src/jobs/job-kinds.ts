import type { ClassConstructor } from 'class-transformer';
import { AvatarPrepareInput, type AvatarPrepareResult } from './avatar-prepare.input';
import { LipsyncInput, type LipsyncResult } from './lipsync.input';

/** What the orchestrator applies to every job of a kind unless the job overrides it. */
export interface JobPolicy {
  /** Execution time-out of one attempt, separate from lease expiry. */
  timeoutSec: number;
  /** Failed or timed-out attempts a job may use up before it fails for good (lost leases have their own limit, MAX_LEASE_LOSSES). */
  maxAttempts: number;
  /** Exponential backoff between attempts: base * 2^(used-1), capped, with jitter. */
  backoff: { baseMs: number; maxMs: number };
  /** What a worker must have to be offered a job of this kind. */
  requirements: { minVramGb: number };
}

interface JobKindSpec<I extends object, R extends object> {
  input: ClassConstructor<I>;
  policy: JobPolicy;
  /** Phantom field that carries the result type; never set at run time. */
  result?: R;
}

function kind<I extends object, R extends object>(input: ClassConstructor<I>, policy: JobPolicy): JobKindSpec<I, R> {
  return { input, policy };
}

/** The one map from job kind to input DTO, result and policy. Producers and handlers are typed from it. */
export const JOB_KINDS = {
  'avatar.prepare': kind<AvatarPrepareInput, AvatarPrepareResult>(AvatarPrepareInput, {
    timeoutSec: 600,
    maxAttempts: 3,
    backoff: { baseMs: 2_000, maxMs: 60_000 },
    requirements: { minVramGb: 4 },
  }),
  lipsync: kind<LipsyncInput, LipsyncResult>(LipsyncInput, {
    timeoutSec: 900,
    maxAttempts: 3,
    backoff: { baseMs: 2_000, maxMs: 60_000 },
    requirements: { minVramGb: 6 },
  }),
};

export type JobKind = keyof typeof JOB_KINDS;
export type JobInput<K extends JobKind> = InstanceType<(typeof JOB_KINDS)[K]['input']>;
export type JobResult<K extends JobKind> = NonNullable<(typeof JOB_KINDS)[K]['result']>;
export const JOB_KIND_NAMES = Object.keys(JOB_KINDS) as JobKind[];

export function isJobKind(value: unknown): value is JobKind {
  return typeof value === 'string' && Object.prototype.hasOwnProperty.call(JOB_KINDS, value);
}
