import { Type } from 'class-transformer';
import {
  IsIn, IsInt, IsNumber, IsObject, IsOptional, IsString, IsUrl, Matches, Max, MaxLength, Min, ValidateNested,
} from 'class-validator';
import { JOB_KIND_NAMES, type JobKind } from '../jobs/job-kinds';
import { WORKER_COMMANDS, type WorkerCommand } from '../protocol/worker.dto';

export const JOB_STATES = ['queued', 'running', 'succeeded', 'failed', 'cancelled'] as const;
export type JobState = (typeof JOB_STATES)[number];
export const TERMINAL_STATES: readonly JobState[] = ['succeeded', 'failed', 'cancelled'];

export class JobRequirements {
  /** Only workers registered with exactly this GPU class are offered the job. */
  @IsOptional() @IsString() @MaxLength(64) gpuClass?: string;
  /** Raises (never lowers) the kind's own VRAM requirement. */
  @IsOptional() @IsNumber({ allowNaN: false, allowInfinity: false }) @Min(0) @Max(4096) minVramGb?: number;
}

export class CreateJobRequest {
  @IsIn(JOB_KIND_NAMES) kind!: JobKind;
  /** Validated against the kind's input DTO. */
  @IsObject() input!: Record<string, unknown>;
  /** Higher runs first; equal priorities run oldest first. */
  @IsOptional() @IsInt() @Min(-1000) @Max(1000) priority?: number;
  @IsOptional() @IsObject() @ValidateNested() @Type(() => JobRequirements) requirements?: JobRequirements;
  /** Repeating a create with the same key returns the first job instead of making another. */
  @IsOptional() @IsString() @Matches(/^[\x21-\x7e]{1,200}$/, { message: '$property must be 1-200 printable ASCII characters' })
  idempotencyKey?: string;
  @IsOptional() @IsUrl({ protocols: ['http', 'https'], require_protocol: true, require_tld: false }) @MaxLength(2048)
  webhookUrl?: string;
  @IsOptional() @IsInt() @Min(1) @Max(20) maxAttempts?: number;
  @IsOptional() @IsInt() @Min(1) @Max(86_400) timeoutSec?: number;
}

export interface JobProgressView {
  stage: string;
  fraction: number;
  sequence: number;
  message: string | null;
  updatedAt: string;
}

export interface JobView {
  id: string;
  /** The name of the product key that created the job. */
  owner: string;
  kind: JobKind;
  state: JobState;
  input: Record<string, unknown>;
  priority: number;
  requirements: { gpuClass: string | null; minVramGb: number };
  idempotencyKey: string | null;
  webhookUrl: string | null;
  /** Claims so far; the current or last attempt number. */
  attempt: number;
  /** Failed and timed-out attempts, counted against maxAttempts (lost leases count in leaseLosses instead). */
  attemptsUsed: number;
  maxAttempts: number;
  leaseLosses: number;
  timeoutSec: number;
  cancelRequested: boolean;
  workerId: string | null;
  progress: JobProgressView | null;
  result: Record<string, unknown> | null;
  error: { code: string; message: string } | null;
  createdAt: string;
  updatedAt: string;
  runAfter: string;
  startedAt: string | null;
  finishedAt: string | null;
}

export class GetJobQuery {
  /** Wait up to this long for the job to reach a terminal state before answering. */
  @IsOptional() @Type(() => Number) @IsInt() @Min(0) @Max(60_000) waitMs?: number;
}

export class ListJobsQuery {
  @IsOptional() @IsIn(JOB_STATES) state?: JobState;
  @IsOptional() @IsIn(JOB_KIND_NAMES) kind?: JobKind;
  @IsOptional() @Type(() => Number) @IsInt() @Min(1) @Max(200) limit?: number;
  /** Opaque, from a previous page's `nextCursor`. */
  @IsOptional() @IsString() @Matches(/^[A-Za-z0-9_-]{1,200}$/, { message: '$property must be a cursor returned by a previous page' })
  cursor?: string;
}

export interface ListJobsResponse {
  items: JobView[];
  nextCursor: string | null;
}

export interface WorkerView {
  id: string;
  provider: string;
  mode: string;
  state: 'online' | 'offline' | 'stopped';
  activity: string;
  gpuClass: string | null;
  gpuName: string | null;
  vramGb: number | null;
  kinds: JobKind[];
  version: string;
  hourlyCost: number | null;
  slots: number;
  executionProvider: string | null;
  command: WorkerCommand | null;
  telemetry: Record<string, number> | null;
  registeredAt: string;
  lastHeartbeatAt: string;
  runningJobs: number;
  /** Registrations of this id so far. */
  epoch: number;
  /** `token`: registered, with its own token. `shared-key`: a legacy host on INTERNAL_API_KEY. */
  credential: 'token' | 'shared-key';
  /** When an operator revoked it; null when it is not revoked. */
  revokedAt: string | null;
}

export class WorkerCommandRequest {
  /** `none` clears a pending command. */
  @IsIn([...WORKER_COMMANDS, 'none']) command!: WorkerCommand | 'none';
}
