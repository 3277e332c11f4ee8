import { IsIn, IsInt, IsObject, IsOptional, IsString, IsUUID, Matches, Max, Min } from 'class-validator';
import { JOB_KIND_NAMES, type JobKind } from '../jobs/job-kinds';
import { STORAGE_PREFIX_MESSAGE, STORAGE_PREFIX_PATTERN } from './storage-prefix';
import { MAX_ATTEMPT, type JobFailure } from './worker.dto';

/**
 * What the orchestrator puts on Salad's job queue, and what the sidecar forwards to a queue-mode
 * worker's `POST /generate`: a job already leased to this attempt, with its fencing token.
 */
export class QueueJobEnvelope {
  @IsUUID() jobId!: string;
  @IsIn(JOB_KIND_NAMES) kind!: JobKind;
  @IsObject() input!: Record<string, unknown>;
  @IsInt() @Min(1) @Max(MAX_ATTEMPT) attempt!: number;
  @IsUUID() leaseToken!: string;
  /** The attempt's execution time-out; the kind's policy when absent. */
  @IsOptional() @IsInt() @Min(1) @Max(86_400) timeoutSec?: number;
  /** The owner's namespace in object storage, as ClaimedJob's; keys are used as they are when absent. */
  @IsOptional() @IsString() @Matches(STORAGE_PREFIX_PATTERN, { message: STORAGE_PREFIX_MESSAGE }) storagePrefix?: string;
}

/** The `/generate` answer; Salad stores it as the job's output. */
export interface QueueJobOutcome {
  jobId: string;
  attempt: number;
  status: 'completed' | 'failed' | 'abandoned';
  result?: Record<string, unknown>;
  error?: JobFailure;
}
