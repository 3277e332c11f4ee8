import { Type } from 'class-transformer';
import {
  ArrayMaxSize, ArrayNotEmpty, ArrayUnique, IsArray, IsBoolean, IsDefined, IsIn, IsInt, IsNumber, IsObject, IsOptional,
  IsString, IsUUID, Matches, Max, MaxLength, Min, ValidateIf, ValidateNested,
} from 'class-validator';
import { JOB_KIND_NAMES, type JobKind } from '../jobs/job-kinds';

/** Attempts are PostgreSQL integers: a larger number is refused here, not by the database with a 500. */
export const MAX_ATTEMPT = 2_147_483_647;

export const WORKER_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/;
export const PROVIDERS = ['vast', 'salad', 'runpod', 'local', 'other'] as const;
export type Provider = (typeof PROVIDERS)[number];
export const WORKER_MODES = ['buffer', 'queue'] as const;
export type WorkerMode = (typeof WORKER_MODES)[number];
export const WORKER_COMMANDS = ['drain', 'shutdown'] as const;
export type WorkerCommand = (typeof WORKER_COMMANDS)[number];
export const WORKER_ACTIVITY = ['loading', 'idle', 'busy', 'draining'] as const;
export type WorkerActivity = (typeof WORKER_ACTIVITY)[number];

export class RegisterWorkerRequest {
  /** A fixed id (legacy `BUFFER_WORKER_ID`); the orchestrator assigns one when absent. */
  @IsOptional() @IsString() @Matches(WORKER_ID_PATTERN, { message: '$property must be 1-128 characters of letters, digits, . _ : -' })
  workerId?: string;

  @IsIn(PROVIDERS) provider!: Provider;
  @IsIn(WORKER_MODES) mode!: WorkerMode;

  /** Scheduling class, e.g. `RTX 3080` (`GPU_CLASS` / legacy `GPU_CLASS_NAME`). */
  @IsOptional() @IsString() @MaxLength(64) gpuClass?: string;
  /** What the driver calls the card, e.g. `NVIDIA GeForce RTX 3080`. */
  @IsOptional() @IsString() @MaxLength(128) gpuName?: string;
  @IsOptional() @IsNumber({ allowNaN: false, allowInfinity: false }) @Min(0) @Max(4096) vramGb?: number;

  @IsArray() @ArrayNotEmpty() @ArrayUnique() @ArrayMaxSize(16) @IsIn(JOB_KIND_NAMES, { each: true })
  kinds!: JobKind[];

  @IsString() @MaxLength(64) version!: string;
  @IsOptional() @IsNumber({ allowNaN: false, allowInfinity: false }) @Min(0) @Max(1000) hourlyCost?: number;
  /** Jobs this worker runs at once. */
  @IsOptional() @IsInt() @Min(1) @Max(64) slots?: number;
  /** onnxruntime execution provider in use (cuda, tensorrt, cpu). */
  @IsOptional() @IsString() @MaxLength(32) executionProvider?: string;
}

export interface RegisterWorkerResponse {
  workerId: string;
  heartbeatIntervalSec: number;
  leaseTtlSec: number;
  maxClaimWaitMs: number;
}

/** A lease the worker believes it holds: the fencing token of one attempt. */
export class HeldLease {
  @IsUUID() jobId!: string;
  @IsInt() @Min(1) @Max(MAX_ATTEMPT) attempt!: number;
  @IsUUID() leaseToken!: string;
}

export class Telemetry {
  @IsOptional() @IsNumber() @Min(0) @Max(100) gpuUtilPct?: number;
  @IsOptional() @IsNumber() @Min(0) @Max(1e7) gpuMemUsedMb?: number;
  @IsOptional() @IsNumber() @Min(0) @Max(1e7) gpuMemTotalMb?: number;
  @IsOptional() @IsNumber() @Min(-50) @Max(200) gpuTempC?: number;
  @IsOptional() @IsNumber() @Min(0) @Max(5000) gpuPowerW?: number;
  @IsOptional() @IsNumber() @Min(0) @Max(100) cpuPct?: number;
  @IsOptional() @IsNumber() @Min(0) @Max(1e8) memUsedMb?: number;
  @IsOptional() @IsNumber() @Min(0) @Max(1e8) memTotalMb?: number;
}

export class HeartbeatRequest {
  @IsIn(WORKER_ACTIVITY) activity!: WorkerActivity;
  @IsArray() @ArrayMaxSize(64) @IsObject({ each: true }) @ValidateNested({ each: true }) @Type(() => HeldLease)
  leases!: HeldLease[];
  @IsOptional() @IsObject() @ValidateNested() @Type(() => Telemetry)
  telemetry?: Telemetry;
  @IsOptional() @IsString() @MaxLength(32) executionProvider?: string;
}

export interface HeartbeatResponse {
  /** Job ids whose leases were extended. */
  renewed: string[];
  /** Job ids whose leases are gone (expired, reassigned, timed out): stop them and drop their results. */
  lost: string[];
  /** Job ids whose cancellation was requested: abort them and report `failed` with code `cancelled`. */
  cancelled: string[];
  commands: WorkerCommand[];
  leaseExpiresAt: string;
}

export class ClaimRequest {
  @IsString() @Matches(WORKER_ID_PATTERN, { message: '$property must be a registered worker id' })
  workerId!: string;
  /** How long to park when nothing is claimable; 0 answers at once. */
  @IsOptional() @IsInt() @Min(0) @Max(25_000) waitMs?: number;
}

export interface ClaimedJob {
  id: string;
  kind: JobKind;
  input: Record<string, unknown>;
  priority: number;
  attempt: number;
  leaseToken: string;
  leaseExpiresAt: string;
  deadlineAt: string;
  timeoutSec: number;
}

export interface ClaimResponse {
  job: ClaimedJob;
}

/** The longest failure message the orchestrator stores. */
export const MAX_FAILURE_MESSAGE = 4000;

export class JobFailure {
  @IsString() @Matches(/^[a-z0-9_.-]{1,64}$/, { message: '$property must be 1-64 characters of a-z, 0-9, _ . -' })
  code!: string;
  @IsString() @MaxLength(MAX_FAILURE_MESSAGE) message!: string;
  @IsBoolean() retryable!: boolean;
}

export const STATUS_KINDS = ['running', 'completed', 'failed'] as const;

/** Every worker write carries (attempt, leaseToken): the fencing token. */
export class FencedWrite {
  @IsInt() @Min(1) @Max(MAX_ATTEMPT) attempt!: number;
  @IsUUID() leaseToken!: string;
}

/** Ask for the next job in the same round trip as a final status: saves a claim request per job. */
export class ClaimNext {
  @IsString() @Matches(WORKER_ID_PATTERN, { message: '$property must be a registered worker id' })
  workerId!: string;
  @IsOptional() @IsInt() @Min(0) @Max(25_000) waitMs?: number;
}

export class StatusRequest extends FencedWrite {
  @IsIn(STATUS_KINDS) status!: (typeof STATUS_KINDS)[number];
  /** Required with `completed`. */
  @ValidateIf((o: StatusRequest) => o.status === 'completed' || o.result !== undefined)
  @IsDefined({ message: '$property is required when status is completed' }) @IsObject()
  result?: Record<string, unknown>;
  /** Required with `failed`. */
  @ValidateIf((o: StatusRequest) => o.status === 'failed' || o.error !== undefined)
  @IsDefined({ message: '$property is required when status is failed' }) @IsObject() @ValidateNested() @Type(() => JobFailure)
  error?: JobFailure;

  /** With `completed` or `failed`: claim the worker's next job in the same call (answered in `next`). */
  @IsOptional() @IsObject() @ValidateNested() @Type(() => ClaimNext)
  claimNext?: ClaimNext;
}

export interface StatusResponse {
  jobId: string;
  state: string;
  /** Present when `claimNext` was asked: the next leased job, or null when none came within its waitMs. */
  next?: ClaimedJob | null;
}

export class ProgressRequest extends FencedWrite {
  @IsString() @Matches(/^[a-z0-9_.-]{1,64}$/, { message: '$property must be 1-64 characters of a-z, 0-9, _ . -' })
  stage!: string;
  @IsNumber({ allowNaN: false, allowInfinity: false }) @Min(0) @Max(1) fraction!: number;
  /**
   * Monotonic per attempt; an older or repeated sequence is ignored. Stored as a PostgreSQL bigint,
   * and an integer beyond 2^53 is not even written exactly (1e21 is "1e+21").
   */
  @IsInt() @Min(0) @Max(Number.MAX_SAFE_INTEGER) sequence!: number;
  @IsOptional() @IsString() @MaxLength(500) message?: string;
}

export interface ProgressResponse {
  cancelRequested: boolean;
  leaseExpiresAt: string;
}

export class DeregisterRequest {
  @IsOptional() @IsString() @MaxLength(500) reason?: string;
}

export interface DeregisterResponse {
  /** Jobs that were requeued at once because this worker held them. */
  released: string[];
}
