import { IsIn, IsInt, IsObject, IsOptional, IsUUID, Max, Min } from 'class-validator';
import { JOB_KIND_NAMES, type JobKind } from '../jobs/job-kinds';
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
}

/** The `/generate` answer; Salad stores it as the job's output. */
export interface QueueJobOutcome {
  jobId: string;
  attempt: number;
  status: 'completed' | 'failed' | 'abandoned';
  result?: Record<string, unknown>;
  error?: JobFailure;
}
