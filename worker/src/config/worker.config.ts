import os from 'node:os';
import path from 'node:path';
import 'reflect-metadata';
import { plainToInstance } from 'class-transformer';
import { IsIn, IsNumberString, IsOptional, Matches, ValidateIf, validateSync } from 'class-validator';
import { JOB_KIND_NAMES, PROVIDERS, WORKER_ID_PATTERN, type JobKind, type Provider, type WorkerMode } from '@avatar-fleet/contracts';
import type { StorageSettings } from '../storage/storage';
import type { LogLevel } from '../runtime/logger';

const HTTP_URL = /^https?:\/\/[^\s/]+(\/\S*)?$/;
const URL_HINT = 'must be an http(s) URL, e.g. https://api.example.com (is the scheme missing?)';
const NO_SPACE = /^\S+$/;
const SPACE_HINT = 'must not contain whitespace (a stray space or newline from copy-paste?)';
const NUMBER_HINT = 'must be a number';
const BOOL_HINT = 'must be true or false';
const needs = (names: string[]) => (env: WorkerEnv) => names.some((n) => env[n as keyof WorkerEnv] !== undefined);

/**
 * Every variable the worker reads, one line each, validated once at start. Names GPU hosts
 * already set (shared/seeds/003) are kept as they are, legacy spellings included.
 */
export class WorkerEnv {
  /** buffer (claim jobs by long-poll) or queue (Salad's sidecar posts them to /generate). Default queue, or buffer when BUFFER_WORKER_ID is set. */
  @IsOptional() @IsIn(['buffer', 'queue'], { message: 'WORKER_MODE must be buffer or queue' }) WORKER_MODE?: string;
  /** Legacy fixed worker id; set alone it also means buffer mode. */
  @IsOptional() @Matches(WORKER_ID_PATTERN, { message: 'BUFFER_WORKER_ID must be 1-128 letters, digits, . _ : -' }) BUFFER_WORKER_ID?: string;
  /** Scheduling class, e.g. "RTX 3080". */
  @IsOptional() @Matches(/^.{1,64}$/, { message: 'GPU_CLASS must be 1-64 characters' }) GPU_CLASS?: string;
  /** Legacy spelling of GPU_CLASS. */
  @IsOptional() @Matches(/^.{1,64}$/, { message: 'GPU_CLASS_NAME must be 1-64 characters' }) GPU_CLASS_NAME?: string;
  /** VRAM to declare, in GB; overrides what nvidia-smi reports (set it on CPU machines, where there is none). */
  @IsOptional() @IsNumberString({}, { message: `GPU_VRAM_GB ${NUMBER_HINT}` }) GPU_VRAM_GB?: string;
  @Matches(HTTP_URL, { message: `ORCHESTRATOR_BASE_URL is required and ${URL_HINT}` }) ORCHESTRATOR_BASE_URL!: string;
  @Matches(NO_SPACE, { message: `INTERNAL_API_KEY is required and ${SPACE_HINT}` }) INTERNAL_API_KEY!: string;

  /** b2 | s3 | local; default b2 when B2_KEY_ID is set, else local. */
  @IsOptional() @IsIn(['b2', 's3', 'local'], { message: 'STORAGE_DRIVER must be b2, s3 or local' }) STORAGE_DRIVER?: string;
  @ValidateIf((e: WorkerEnv) => e.storageDriver() === 'b2') @Matches(NO_SPACE, { message: `B2_KEY_ID is required for b2 storage and ${SPACE_HINT}` }) B2_KEY_ID?: string;
  @ValidateIf((e: WorkerEnv) => e.storageDriver() === 'b2') @Matches(NO_SPACE, { message: `B2_APP_KEY is required for b2 storage and ${SPACE_HINT}` }) B2_APP_KEY?: string;
  @ValidateIf((e: WorkerEnv) => e.storageDriver() === 'b2') @Matches(/^[A-Za-z0-9-]{6,63}$/, { message: 'B2_BUCKET_NAME is required for b2 storage: 6-63 letters, digits or -' }) B2_BUCKET_NAME?: string;
  /** Where b2_authorize_account lives (default Backblaze's). */
  @IsOptional() @Matches(HTTP_URL, { message: `B2_AUTH_URL ${URL_HINT}` }) B2_AUTH_URL?: string;
  /** Outputs at or above this size go through B2's large-file API, in parts (default 100). */
  @IsOptional() @IsNumberString({}, { message: `B2_LARGE_FILE_THRESHOLD_MB ${NUMBER_HINT}` }) B2_LARGE_FILE_THRESHOLD_MB?: string;
  @IsOptional() @IsNumberString({}, { message: `B2_PART_SIZE_MB ${NUMBER_HINT}` }) B2_PART_SIZE_MB?: string;
  @IsOptional() @Matches(HTTP_URL, { message: `S3_ENDPOINT ${URL_HINT}` }) S3_ENDPOINT?: string;
  @IsOptional() @Matches(/^[a-z0-9-]{1,32}$/, { message: 'S3_REGION must look like us-east-1' }) S3_REGION?: string;
  @ValidateIf((e: WorkerEnv) => e.storageDriver() === 's3') @Matches(/^[a-z0-9.-]{3,63}$/, { message: 'S3_BUCKET is required for s3 storage: 3-63 lower-case letters, digits, . or -' }) S3_BUCKET?: string;
  @ValidateIf((e: WorkerEnv) => e.storageDriver() === 's3') @Matches(NO_SPACE, { message: `S3_ACCESS_KEY_ID is required for s3 storage and ${SPACE_HINT}` }) S3_ACCESS_KEY_ID?: string;
  @ValidateIf((e: WorkerEnv) => e.storageDriver() === 's3') @Matches(NO_SPACE, { message: `S3_SECRET_ACCESS_KEY is required for s3 storage and ${SPACE_HINT}` }) S3_SECRET_ACCESS_KEY?: string;
  /** The local driver's folder (default .data/storage). */
  @IsOptional() LOCAL_STORAGE_DIR?: string;

  /** Where models live (default .data/models; /app/models in the image). */
  @IsOptional() MODEL_DIR?: string;
  @IsOptional() @IsIn(['true', 'false'], { message: `MODEL_SYNC_ENABLED ${BOOL_HINT}` }) MODEL_SYNC_ENABLED?: string;
  /** b2 | s3 | local: the private models bucket's kind (default b2). */
  @ValidateIf(needs(['MODEL_SYNC_DRIVER'])) @IsIn(['b2', 's3', 'local'], { message: 'MODEL_SYNC_DRIVER must be b2, s3 or local' }) MODEL_SYNC_DRIVER?: string;
  @ValidateIf((e: WorkerEnv) => e.syncEnabled()) @Matches(/^[A-Za-z0-9.\-_/]{1,255}$/, { message: 'MODEL_SYNC_BUCKET is required when MODEL_SYNC_ENABLED=true (a bucket name, or a folder for the local driver)' }) MODEL_SYNC_BUCKET?: string;
  @ValidateIf((e: WorkerEnv) => e.syncEnabled() && e.syncDriver() !== 'local') @Matches(NO_SPACE, { message: `MODEL_SYNC_KEY_ID is required when MODEL_SYNC_ENABLED=true and ${SPACE_HINT}` }) MODEL_SYNC_KEY_ID?: string;
  @ValidateIf((e: WorkerEnv) => e.syncEnabled() && e.syncDriver() !== 'local') @Matches(NO_SPACE, { message: `MODEL_SYNC_APP_KEY is required when MODEL_SYNC_ENABLED=true and ${SPACE_HINT}` }) MODEL_SYNC_APP_KEY?: string;
  /** The S3 endpoint, or B2's authorize URL, of the models bucket. */
  @IsOptional() @Matches(HTTP_URL, { message: `MODEL_SYNC_ENDPOINT ${URL_HINT}` }) MODEL_SYNC_ENDPOINT?: string;
  @IsOptional() @Matches(/^[a-z0-9-]{1,32}$/, { message: 'MODEL_SYNC_REGION must look like us-east-1' }) MODEL_SYNC_REGION?: string;
  @IsOptional() @Matches(/^[A-Za-z0-9._\-/]{0,255}$/, { message: 'MODEL_SYNC_PREFIX must be a key prefix (letters, digits, . _ - /)' }) MODEL_SYNC_PREFIX?: string;
  /** Comma-separated folders under the prefix, e.g. musetalk,blazeface. */
  @ValidateIf((e: WorkerEnv) => e.syncEnabled()) @Matches(/^[A-Za-z0-9._-]+(,[A-Za-z0-9._-]+)*$/, { message: 'MODEL_SYNC_SOURCES is required when MODEL_SYNC_ENABLED=true: comma-separated folder names, no spaces' }) MODEL_SYNC_SOURCES?: string;
  /** Refuse to start on a dev model set (a missing model file is refused either way). */
  @IsOptional() @IsIn(['true', 'false'], { message: `REQUIRE_REAL_MODELS ${BOOL_HINT}` }) REQUIRE_REAL_MODELS?: string;
  /** auto (CUDA when it loads, else CPU) | tensorrt (TensorRT, else CUDA, else CPU) | cuda (or fail) | cpu. */
  @IsOptional() @IsIn(['auto', 'tensorrt', 'cuda', 'cpu'], { message: 'EXECUTION_PROVIDER must be auto, tensorrt, cuda or cpu' }) EXECUTION_PROVIDER?: string;

  /** auto (h264_nvenc when a test encode works, else libx264) | libx264 | h264_nvenc (or fail at start). */
  @IsOptional() @IsIn(['auto', 'libx264', 'h264_nvenc'], { message: 'VIDEO_ENCODER must be auto, libx264 or h264_nvenc' }) VIDEO_ENCODER?: string;

  /** vast | salad | runpod | local | other; guessed from the host's own variables when absent. */
  @IsOptional() @IsIn(PROVIDERS, { message: `WORKER_PROVIDER must be one of ${PROVIDERS.join(', ')}` }) WORKER_PROVIDER?: string;
  @IsOptional() @IsNumberString({}, { message: `GPU_HOURLY_COST ${NUMBER_HINT} (dollars per hour)` }) GPU_HOURLY_COST?: string;
  /** Jobs run at once (default 1). */
  @IsOptional() @Matches(/^([1-9]|[1-5][0-9]|6[0-4])$/, { message: 'WORKER_SLOTS must be a whole number from 1 to 64' }) WORKER_SLOTS?: string;
  /** Comma-separated job kinds to take; default every kind this build has a pipeline for. */
  @IsOptional() @Matches(new RegExp(`^(${JOB_KIND_NAMES.map((k) => k.replace('.', '\\.')).join('|')})(,(${JOB_KIND_NAMES.map((k) => k.replace('.', '\\.')).join('|')}))*$`), { message: `WORKER_KINDS must be a comma-separated list of ${JOB_KIND_NAMES.join(', ')}` }) WORKER_KINDS?: string;
  /** The worker's HTTP port: /hc and /ping, and /generate in queue mode (Salad's sidecar forwards to 8000); 0 picks a free one. */
  @IsOptional() @Matches(/^(0|[1-9]\d{0,3}|[1-5]\d{4}|6[0-4]\d{3}|65[0-4]\d{2}|655[0-2]\d|6553[0-5])$/, { message: 'WORKER_PORT must be a port number (0-65535)' }) WORKER_PORT?: string;
  /** Seconds a SIGTERM waits for the running job before releasing it (default 20). */
  @IsOptional() @IsNumberString({}, { message: `SHUTDOWN_GRACE_SEC ${NUMBER_HINT}` }) SHUTDOWN_GRACE_SEC?: string;
  @IsOptional() SCRATCH_DIR?: string;
  @IsOptional() @IsIn(['debug', 'info', 'warn', 'error'], { message: 'LOG_LEVEL must be debug, info, warn or error' }) LOG_LEVEL?: string;

  storageDriver(): string {
    return this.STORAGE_DRIVER ?? (this.B2_KEY_ID !== undefined ? 'b2' : 'local');
  }
  syncEnabled(): boolean {
    return this.MODEL_SYNC_ENABLED === 'true';
  }
  syncDriver(): string {
    return this.MODEL_SYNC_DRIVER ?? 'b2';
  }
}

export interface ModelSyncSettings {
  storage: StorageSettings;
  prefix: string;
  sources: string[];
}

export interface WorkerConfig {
  mode: WorkerMode;
  fixedWorkerId?: string;
  gpuClass?: string;
  vramGbOverride?: number;
  orchestratorUrl: string;
  internalApiKey: string;
  storage: StorageSettings;
  modelDir: string;
  modelSync?: ModelSyncSettings;
  requireRealModels: boolean;
  executionProvider: 'auto' | 'tensorrt' | 'cuda' | 'cpu';
  videoEncoder: 'auto' | 'libx264' | 'h264_nvenc';
  provider: Provider;
  hourlyCost?: number;
  slots: number;
  /** Undefined: every kind the build has a pipeline for. */
  kinds?: JobKind[];
  port: number;
  shutdownGraceMs: number;
  scratchDir: string;
  logLevel: LogLevel;
}

/** Bad configuration: the message names every bad variable and never a value. */
export class WorkerConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`invalid worker configuration:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'WorkerConfigError';
  }
}

const MB = 1024 * 1024;

/** Reads and validates the environment once; throws WorkerConfigError listing every problem. */
export function loadWorkerConfig(env: NodeJS.ProcessEnv, cwd = process.cwd()): WorkerConfig {
  const raw: Record<string, string> = {};
  for (const key of WORKER_ENV_NAMES) {
    const value = env[key];
    if (value !== undefined && value !== '') raw[key] = value;
  }
  const e = plainToInstance(WorkerEnv, raw);
  const problems = validateSync(e).flatMap((v) => Object.values(v.constraints ?? {}));
  if (problems.length) throw new WorkerConfigError([...new Set(problems)]);

  const num = (v: string | undefined) => (v === undefined ? undefined : Number(v));
  const dir = (v: string | undefined, fallback: string) => path.resolve(cwd, v ?? fallback);
  const storage = storageSettings(e.storageDriver(), {
    keyId: e.B2_KEY_ID, appKey: e.B2_APP_KEY, b2Bucket: e.B2_BUCKET_NAME, s3Bucket: e.S3_BUCKET, authUrl: e.B2_AUTH_URL,
    endpoint: e.S3_ENDPOINT, region: e.S3_REGION, s3KeyId: e.S3_ACCESS_KEY_ID, s3Secret: e.S3_SECRET_ACCESS_KEY,
    localRoot: dir(e.LOCAL_STORAGE_DIR, '.data/storage'),
    largeFileThresholdBytes: num(e.B2_LARGE_FILE_THRESHOLD_MB) !== undefined ? num(e.B2_LARGE_FILE_THRESHOLD_MB)! * MB : undefined,
    partSizeBytes: num(e.B2_PART_SIZE_MB) !== undefined ? num(e.B2_PART_SIZE_MB)! * MB : undefined,
  });
  const modelSync: ModelSyncSettings | undefined = e.syncEnabled()
    ? {
        storage: storageSettings(e.syncDriver(), {
          keyId: e.MODEL_SYNC_KEY_ID, appKey: e.MODEL_SYNC_APP_KEY, b2Bucket: e.MODEL_SYNC_BUCKET, s3Bucket: e.MODEL_SYNC_BUCKET, authUrl: e.MODEL_SYNC_ENDPOINT,
          endpoint: e.MODEL_SYNC_ENDPOINT, region: e.MODEL_SYNC_REGION, s3KeyId: e.MODEL_SYNC_KEY_ID, s3Secret: e.MODEL_SYNC_APP_KEY,
          localRoot: dir(e.MODEL_SYNC_BUCKET, '.'),
        }),
        prefix: e.MODEL_SYNC_PREFIX ?? '',
        sources: e.MODEL_SYNC_SOURCES!.split(','),
      }
    : undefined;
  return {
    mode: (e.WORKER_MODE as WorkerMode | undefined) ?? (e.BUFFER_WORKER_ID ? 'buffer' : 'queue'),
    fixedWorkerId: e.BUFFER_WORKER_ID,
    gpuClass: e.GPU_CLASS ?? e.GPU_CLASS_NAME,
    vramGbOverride: num(e.GPU_VRAM_GB),
    orchestratorUrl: e.ORCHESTRATOR_BASE_URL.replace(/\/+$/, ''),
    internalApiKey: e.INTERNAL_API_KEY,
    storage,
    modelDir: dir(e.MODEL_DIR, '.data/models'),
    modelSync,
    requireRealModels: e.REQUIRE_REAL_MODELS === 'true',
    executionProvider: (e.EXECUTION_PROVIDER as WorkerConfig['executionProvider'] | undefined) ?? 'auto',
    videoEncoder: (e.VIDEO_ENCODER as WorkerConfig['videoEncoder'] | undefined) ?? 'auto',
    provider: (e.WORKER_PROVIDER as Provider | undefined) ?? guessProvider(env),
    hourlyCost: num(e.GPU_HOURLY_COST),
    slots: Number(e.WORKER_SLOTS ?? 1),
    kinds: e.WORKER_KINDS ? ([...new Set(e.WORKER_KINDS.split(','))] as JobKind[]) : undefined,
    port: Number(e.WORKER_PORT ?? 8000),
    shutdownGraceMs: (num(e.SHUTDOWN_GRACE_SEC) ?? 20) * 1000,
    scratchDir: dir(e.SCRATCH_DIR, os.tmpdir()),
    logLevel: (e.LOG_LEVEL as LogLevel | undefined) ?? 'info',
  };
}

/** Every variable WorkerEnv declares; anything else in the environment is ignored. */
export const WORKER_ENV_NAMES = [
  'WORKER_MODE', 'BUFFER_WORKER_ID', 'GPU_CLASS', 'GPU_CLASS_NAME', 'GPU_VRAM_GB', 'ORCHESTRATOR_BASE_URL', 'INTERNAL_API_KEY',
  'STORAGE_DRIVER', 'B2_KEY_ID', 'B2_APP_KEY', 'B2_BUCKET_NAME', 'B2_AUTH_URL', 'B2_LARGE_FILE_THRESHOLD_MB', 'B2_PART_SIZE_MB',
  'S3_ENDPOINT', 'S3_REGION', 'S3_BUCKET', 'S3_ACCESS_KEY_ID', 'S3_SECRET_ACCESS_KEY', 'LOCAL_STORAGE_DIR',
  'MODEL_DIR', 'MODEL_SYNC_ENABLED', 'MODEL_SYNC_DRIVER', 'MODEL_SYNC_BUCKET', 'MODEL_SYNC_KEY_ID', 'MODEL_SYNC_APP_KEY',
  'MODEL_SYNC_ENDPOINT', 'MODEL_SYNC_REGION', 'MODEL_SYNC_PREFIX', 'MODEL_SYNC_SOURCES', 'REQUIRE_REAL_MODELS', 'EXECUTION_PROVIDER', 'VIDEO_ENCODER',
  'WORKER_PROVIDER', 'GPU_HOURLY_COST', 'WORKER_SLOTS', 'WORKER_KINDS', 'WORKER_PORT', 'SHUTDOWN_GRACE_SEC', 'SCRATCH_DIR', 'LOG_LEVEL',
] as const;

interface StorageFields {
  keyId?: string; appKey?: string; b2Bucket?: string; s3Bucket?: string; authUrl?: string; endpoint?: string; region?: string;
  s3KeyId?: string; s3Secret?: string; localRoot: string; largeFileThresholdBytes?: number; partSizeBytes?: number;
}

function storageSettings(driver: string, f: StorageFields): StorageSettings {
  if (driver === 'b2') {
    return { driver: 'b2', b2: { keyId: f.keyId!, appKey: f.appKey!, bucket: f.b2Bucket!, authUrl: f.authUrl, largeFileThresholdBytes: f.largeFileThresholdBytes, partSizeBytes: f.partSizeBytes } };
  }
  if (driver === 's3') {
    return { driver: 's3', s3: { bucket: f.s3Bucket!, endpoint: f.endpoint, region: f.region ?? 'us-east-1', accessKeyId: f.s3KeyId!, secretAccessKey: f.s3Secret!, forcePathStyle: f.endpoint !== undefined } };
  }
  return { driver: 'local', local: { root: f.localRoot } };
}

/** Each marketplace sets its own variables in the container; used only when WORKER_PROVIDER is absent. */
function guessProvider(env: NodeJS.ProcessEnv): Provider {
  if (env.SALAD_MACHINE_ID || env.SALAD_CONTAINER_GROUP_ID) return 'salad';
  if (env.RUNPOD_POD_ID) return 'runpod';
  if (env.VAST_CONTAINERLABEL || env.CONTAINER_ID?.startsWith('C.')) return 'vast';
  return 'local';
}
