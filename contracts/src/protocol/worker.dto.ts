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
  /**
   * The epoch this process was last registered with, when it registers again (after losing its
   * registration). Refused with 409 stale_registration when another process registered the id since.
   */
  @IsOptional() @IsInt() @Min(1) @Max(MAX_ATTEMPT) epoch?: number;
}

export interface RegisterWorkerResponse {
  workerId: string;
  /**
   * This worker's own credential: send it as `Authorization: Bearer <token>` on every other call
   * (heartbeat, claim, status, progress, deregister). It is shown once; the orchestrator keeps a hash.
   */
  token: string;
  /** Registration epoch: one more each time this id registers. A newer one fences out older processes. */
  epoch: number;
  heartbeatIntervalSec: number;
  leaseTtlSec: number;
  maxClaimWaitMs: number;
}

/** The worker token's prefix: tells a token from a shared key at a glance, and in the log's redactions. */
export const WORKER_TOKEN_PREFIX = 'wkr_';

/**
 * What a legacy host (seed 003) may say about itself in a heartbeat or claim. It never registers:
 * the orchestrator registers it from these on its first heartbeat or claim. Ignored otherwise.
 */
export class LegacyIdentity {
  /** `GPU_CLASS` or `GPU_CLASS_NAME`; `RTX 3090 (24 GB)` also gives the VRAM. */
  @IsOptional() @IsString() @MaxLength(64) gpuClass?: string;
  @IsOptional() @IsString() @MaxLength(64) gpuClassName?: string;
  @IsOptional() @IsNumber({ allowNaN: false, allowInfinity: false }) @Min(0) @Max(4096) vramGb?: number;
  /** Kinds it runs; a MuseTalk buffer worker runs `lipsync` when this is absent. */
  @IsOptional() @IsArray() @ArrayNotEmpty() @ArrayUnique() @ArrayMaxSize(16) @IsIn(JOB_KIND_NAMES, { each: true })
  kinds?: JobKind[];
  @IsOptional() @IsString() @MaxLength(64) version?: string;
  @IsOptional() @IsIn(PROVIDERS) provider?: Provider;
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

export class HeartbeatRequest extends LegacyIdentity {
  /** `busy` when absent and the worker holds a job, else `idle`. */
  @IsOptional() @IsIn(WORKER_ACTIVITY) activity?: WorkerActivity;
  /**
   * The leases the worker holds; each is renewed if still its own, and `lost` lists the rest.
   * Absent (a legacy host), every lease the orchestrator knows the worker holds is renewed.
   */
  @IsOptional() @IsArray() @ArrayMaxSize(64) @IsObject({ each: true }) @ValidateNested({ each: true }) @Type(() => HeldLease)
  leases?: HeldLease[];
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

export class ClaimRequest extends LegacyIdentity {
  @IsDefined({ message: '$property is required: the id this worker registered with (BUFFER_WORKER_ID)' })
  @IsString() @Matches(WORKER_ID_PATTERN, { message: '$property must be 1-128 characters of letters, digits, . _ : -' })
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
  /**
   * `tenants/<owner>/`: the job's owner's namespace in object storage, under which the worker reads
   * and writes every key of the job (STORAGE_PREFIX_PATTERN). Absent from orchestrators older than
   * storage namespacing; the job then uses keys as they are.
   */
  storagePrefix?: string;
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
  @IsDefined({ message: '$property is required: send the attempt from the claim answer' })
  @IsInt() @Min(1) @Max(MAX_ATTEMPT) attempt!: number;
  @IsDefined({ message: '$property is required: send the leaseToken from the claim answer' })
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
  /** The epoch this process registered with: refused (409 stale_registration) when the id registered again since. */
  @IsOptional() @IsInt() @Min(1) @Max(MAX_ATTEMPT) epoch?: number;
}

export interface DeregisterResponse {
  /** Jobs that were requeued at once because this worker held them. */
  released: string[];
}
