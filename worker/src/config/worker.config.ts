import os from 'node:os';
import path from 'node:path';
import 'reflect-metadata';
import { plainToInstance } from 'class-transformer';
import { IsIn, IsNumberString, IsOptional, Matches, ValidateIf, validateSync } from 'class-validator';
import {
  AddressPolicy, EnvVar, JOB_KIND_NAMES, PROVIDERS, WORKER_ID_PATTERN, parseAddressList, parseGpuClassName, type JobKind, type Provider, type WorkerMode,
} from '@avatar-fleet/contracts';
import { B2_DEFAULT_LARGE_FILE_MB, B2_DEFAULT_PART_SIZE_MB, type StorageSettings } from '../storage/storage';
import type { LogLevel } from '../runtime/logger';

const HTTP_URL = /^https?:\/\/[^\s/]+(\/\S*)?$/;
const URL_HINT = 'must be an http(s) URL, e.g. https://api.example.com (is the scheme missing?)';
const NO_SPACE = /^\S+$/;
const SPACE_HINT = 'must not contain whitespace (a stray space or newline from copy-paste?)';
const NUMBER_HINT = 'must be a number';
const BOOL_HINT = 'must be true or false';
const needs = (names: string[]) => (env: WorkerEnv) => names.some((n) => env[n as keyof WorkerEnv] !== undefined);
const S3_DEFAULT_REGION = 'us-east-1';

/** The fixed defaults: loadWorkerConfig applies them, and `@EnvVar` shows them in docs/configuration.md. */
const DEFAULTS = {
  S3_REGION: S3_DEFAULT_REGION,
  LOCAL_STORAGE_DIR: '.data/storage',
  MODEL_DIR: '.data/models',
  MODEL_SYNC_ENABLED: 'false',
  MODEL_SYNC_DRIVER: 'b2',
  MODEL_SYNC_REGION: S3_DEFAULT_REGION,
  MODEL_SYNC_PREFIX: '',
  REQUIRE_REAL_MODELS: 'false',
  EXECUTION_PROVIDER: 'auto',
  VIDEO_ENCODER: 'auto',
  WORKER_SLOTS: 1,
  WORKER_PORT: 8000,
  SHUTDOWN_GRACE_SEC: 20,
  LOG_LEVEL: 'info',
} as const satisfies Partial<Record<(typeof WORKER_ENV_NAMES)[number], string | number>>;

/**
 * Every variable the worker reads, validated once at start; `@EnvVar` holds each one's entry in
 * docs/configuration.md (`npm run docs:config`). Names GPU hosts already set (shared/seeds/003)
 * are kept as they are, legacy spellings included.
 */
export class WorkerEnv {
  @EnvVar({
    defaultText: '`queue`, or `buffer` when `BUFFER_WORKER_ID` is set',
    description: '`buffer`: register with the orchestrator, heartbeat and claim jobs by long poll (Vast.ai, RunPod, local). ' +
      '`queue`: take the jobs that Salad\'s job-queue sidecar, started by the entrypoint beside the worker, posts to `POST /generate`.',
  })
  @IsOptional() @IsIn(['buffer', 'queue'], { message: 'WORKER_MODE must be buffer or queue' }) WORKER_MODE?: string;
  @EnvVar({
    description: '**Legacy.** A fixed worker id: 1–128 letters, digits, `.`, `_`, `:` or `-`, starting with a letter or digit. ' +
      'Set alone, it also means buffer mode. Unset: the orchestrator assigns `<provider>-<12 hex>`.',
  })
  @IsOptional() @Matches(WORKER_ID_PATTERN, { message: 'BUFFER_WORKER_ID must be 1-128 letters, digits, . _ : -' }) BUFFER_WORKER_ID?: string;
  @EnvVar({
    defaultText: 'the GPU name from `nvidia-smi`, else none',
    description: 'Scheduling class the worker registers with, 1–64 characters, e.g. `RTX 4090`. A job that asks for a ' +
      '`gpuClass` goes only to workers whose class is exactly that string.',
  })
  @IsOptional() @Matches(/^.{1,64}$/, { message: 'GPU_CLASS must be 1-64 characters' }) GPU_CLASS?: string;
  @EnvVar({
    description: '**Legacy** form of `GPU_CLASS`, read when `GPU_CLASS` is unset. `RTX 3090 (24 GB)` registers class `RTX 3090` ' +
      'with 24 GB of VRAM (unless `GPU_VRAM_GB` is set), as the orchestrator reads it from a legacy host.',
  })
  @IsOptional() @Matches(/^.{1,64}$/, { message: 'GPU_CLASS_NAME must be 1-64 characters' }) GPU_CLASS_NAME?: string;
  @EnvVar({
    defaultText: 'from `nvidia-smi`, else none',
    description: 'VRAM in GB to register with; when set, it replaces what `nvidia-smi` reports. Set it on machines without ' +
      '`nvidia-smi`: a worker with neither declares no VRAM and gets no jobs, since every job kind asks for some.',
  })
  @IsOptional() @IsNumberString({}, { message: `GPU_VRAM_GB ${NUMBER_HINT}` }) GPU_VRAM_GB?: string;
  @EnvVar({ description: 'Orchestrator base URL with scheme, e.g. `https://api.example.com`.' })
  @Matches(HTTP_URL, { message: `ORCHESTRATOR_BASE_URL is required and ${URL_HINT}` }) ORCHESTRATOR_BASE_URL!: string;
  @EnvVar({
    description: 'The orchestrator\'s `INTERNAL_API_KEY` (the enrolment key), the same value on every worker. No whitespace. The ' +
      'worker registers with it, then authenticates every other call with the token that registration returned.',
    secret: true,
  })
  @Matches(NO_SPACE, { message: `INTERNAL_API_KEY is required and ${SPACE_HINT}` }) INTERNAL_API_KEY!: string;

  @EnvVar({
    defaultText: '`b2` when `B2_KEY_ID` is set, else `local`',
    description: 'Object storage for inputs and outputs: `b2` (Backblaze B2\'s native API), `s3` (any S3-compatible store) ' +
      'or `local` (a folder: development, tests, single machines).',
  })
  @IsOptional() @IsIn(['b2', 's3', 'local'], { message: 'STORAGE_DRIVER must be b2, s3 or local' }) STORAGE_DRIVER?: string;
  @EnvVar({ requiredWhen: 'for `b2`', description: 'B2 application key id.', secret: true })
  @ValidateIf((e: WorkerEnv) => e.storageDriver() === 'b2') @Matches(NO_SPACE, { message: `B2_KEY_ID is required for b2 storage and ${SPACE_HINT}` }) B2_KEY_ID?: string;
  @EnvVar({ requiredWhen: 'for `b2`', description: 'B2 application key.', secret: true })
  @ValidateIf((e: WorkerEnv) => e.storageDriver() === 'b2') @Matches(NO_SPACE, { message: `B2_APP_KEY is required for b2 storage and ${SPACE_HINT}` }) B2_APP_KEY?: string;
  @EnvVar({ requiredWhen: 'for `b2`', description: 'Bucket for inputs and outputs, 6–63 letters, digits or `-`, e.g. `talking-avatar`.' })
  @ValidateIf((e: WorkerEnv) => e.storageDriver() === 'b2') @Matches(/^[A-Za-z0-9-]{6,63}$/, { message: 'B2_BUCKET_NAME is required for b2 storage: 6-63 letters, digits or -' }) B2_BUCKET_NAME?: string;
  @EnvVar({ defaultText: 'Backblaze\'s', description: 'Where `b2_authorize_account` lives: the full URL or just the API host.' })
  @IsOptional() @Matches(HTTP_URL, { message: `B2_AUTH_URL ${URL_HINT}` }) B2_AUTH_URL?: string;
  @EnvVar({
    default: B2_DEFAULT_LARGE_FILE_MB,
    description: 'Uploads of at least this many MiB go through B2\'s large-file API, in parts.',
  })
  @IsOptional() @IsNumberString({}, { message: `B2_LARGE_FILE_THRESHOLD_MB ${NUMBER_HINT}` }) B2_LARGE_FILE_THRESHOLD_MB?: string;
  @EnvVar({
    default: B2_DEFAULT_PART_SIZE_MB,
    description: 'Part size of large files, in MiB. Raised when B2\'s minimum part size or its 10,000-part limit needs larger parts.',
  })
  @IsOptional() @IsNumberString({}, { message: `B2_PART_SIZE_MB ${NUMBER_HINT}` }) B2_PART_SIZE_MB?: string;
  @EnvVar({
    defaultText: 'AWS',
    description: 'Endpoint of an S3-compatible store (R2, MinIO, B2\'s S3 endpoint). When set, path-style addressing is used.',
  })
  @IsOptional() @Matches(HTTP_URL, { message: `S3_ENDPOINT ${URL_HINT}` }) S3_ENDPOINT?: string;
  @EnvVar({ default: DEFAULTS.S3_REGION, description: 'S3 region.' })
  @IsOptional() @Matches(/^[a-z0-9-]{1,32}$/, { message: 'S3_REGION must look like us-east-1' }) S3_REGION?: string;
  @EnvVar({ requiredWhen: 'for `s3`', description: 'Bucket for inputs and outputs, 3–63 lower-case letters, digits, `.` or `-`.' })
  @ValidateIf((e: WorkerEnv) => e.storageDriver() === 's3') @Matches(/^[a-z0-9.-]{3,63}$/, { message: 'S3_BUCKET is required for s3 storage: 3-63 lower-case letters, digits, . or -' }) S3_BUCKET?: string;
  @EnvVar({ requiredWhen: 'for `s3`', description: 'S3 access key id.', secret: true })
  @ValidateIf((e: WorkerEnv) => e.storageDriver() === 's3') @Matches(NO_SPACE, { message: `S3_ACCESS_KEY_ID is required for s3 storage and ${SPACE_HINT}` }) S3_ACCESS_KEY_ID?: string;
  @EnvVar({ requiredWhen: 'for `s3`', description: 'S3 secret access key.', secret: true })
  @ValidateIf((e: WorkerEnv) => e.storageDriver() === 's3') @Matches(NO_SPACE, { message: `S3_SECRET_ACCESS_KEY is required for s3 storage and ${SPACE_HINT}` }) S3_SECRET_ACCESS_KEY?: string;
  @EnvVar({
    default: DEFAULTS.LOCAL_STORAGE_DIR,
    description: 'The folder that plays the bucket for `STORAGE_DRIVER=local`. The compose file mounts a volume at `/data/storage`.',
  })
  @IsOptional() LOCAL_STORAGE_DIR?: string;

  @EnvVar({
    default: DEFAULTS.MODEL_DIR,
    description: 'Where the models live (MuseTalk\'s in `MODEL_DIR/musetalk/`). The image sets `/app/models`. Put it on a ' +
      'persistent volume where the platform has one (RunPod: under `/workspace`).',
  })
  @IsOptional() MODEL_DIR?: string;
  @EnvVar({
    default: DEFAULTS.MODEL_SYNC_ENABLED,
    description: '`true`: at start, copy missing or changed model files from the model bucket into `MODEL_DIR` (manifest `MODEL_DIR/.model-sync.json`).',
  })
  @IsOptional() @IsIn(['true', 'false'], { message: `MODEL_SYNC_ENABLED ${BOOL_HINT}` }) MODEL_SYNC_ENABLED?: string;
  @EnvVar({ default: DEFAULTS.MODEL_SYNC_DRIVER, description: 'Kind of the model bucket.' })
  @ValidateIf(needs(['MODEL_SYNC_DRIVER'])) @IsIn(['b2', 's3', 'local'], { message: 'MODEL_SYNC_DRIVER must be b2, s3 or local' }) MODEL_SYNC_DRIVER?: string;
  @EnvVar({ requiredWhen: 'with sync', description: 'The model bucket\'s name, or a folder for the `local` driver.' })
  @ValidateIf((e: WorkerEnv) => e.syncEnabled()) @Matches(/^[A-Za-z0-9.\-_/]{1,255}$/, { message: 'MODEL_SYNC_BUCKET is required when MODEL_SYNC_ENABLED=true (a bucket name, or a folder for the local driver)' }) MODEL_SYNC_BUCKET?: string;
  @EnvVar({ requiredWhen: 'with sync, unless `local`', description: 'Key id of the model bucket (the access key id for `s3`).', secret: true })
  @ValidateIf((e: WorkerEnv) => e.syncEnabled() && e.syncDriver() !== 'local') @Matches(NO_SPACE, { message: `MODEL_SYNC_KEY_ID is required when MODEL_SYNC_ENABLED=true and ${SPACE_HINT}` }) MODEL_SYNC_KEY_ID?: string;
  @EnvVar({ requiredWhen: 'with sync, unless `local`', description: 'Key of the model bucket (the secret access key for `s3`).', secret: true })
  @ValidateIf((e: WorkerEnv) => e.syncEnabled() && e.syncDriver() !== 'local') @Matches(NO_SPACE, { message: `MODEL_SYNC_APP_KEY is required when MODEL_SYNC_ENABLED=true and ${SPACE_HINT}` }) MODEL_SYNC_APP_KEY?: string;
  @EnvVar({ description: 'The model bucket\'s S3 endpoint, or B2\'s authorize URL.' })
  @IsOptional() @Matches(HTTP_URL, { message: `MODEL_SYNC_ENDPOINT ${URL_HINT}` }) MODEL_SYNC_ENDPOINT?: string;
  @EnvVar({ default: DEFAULTS.MODEL_SYNC_REGION, description: 'The model bucket\'s S3 region.' })
  @IsOptional() @Matches(/^[a-z0-9-]{1,32}$/, { message: 'MODEL_SYNC_REGION must look like us-east-1' }) MODEL_SYNC_REGION?: string;
  @EnvVar({ default: DEFAULTS.MODEL_SYNC_PREFIX, description: 'Folder in the model bucket that holds the sources.' })
  @IsOptional() @Matches(/^[A-Za-z0-9._\-/]{0,255}$/, { message: 'MODEL_SYNC_PREFIX must be a key prefix (letters, digits, . _ - /)' }) MODEL_SYNC_PREFIX?: string;
  @EnvVar({
    requiredWhen: 'with sync',
    description: 'Comma-separated folders under the prefix, e.g. `musetalk` (BlazeFace ships with the worker). ' +
      '`{prefix}/{source}/x` lands at `{MODEL_DIR}/{source}/x`.',
  })
  @ValidateIf((e: WorkerEnv) => e.syncEnabled()) @Matches(/^[A-Za-z0-9._-]+(,[A-Za-z0-9._-]+)*$/, { message: 'MODEL_SYNC_SOURCES is required when MODEL_SYNC_ENABLED=true: comma-separated folder names, no spaces' }) MODEL_SYNC_SOURCES?: string;
  @EnvVar({
    default: DEFAULTS.REQUIRE_REAL_MODELS,
    description: '`true`: refuse to start on a dev model set (a model folder whose `metadata.json` says `"dev": true`). ' +
      'A missing model file refuses start either way. The Salad, Vast.ai and RunPod templates set `true`.',
  })
  @IsOptional() @IsIn(['true', 'false'], { message: `REQUIRE_REAL_MODELS ${BOOL_HINT}` }) REQUIRE_REAL_MODELS?: string;
  @EnvVar({
    default: DEFAULTS.EXECUTION_PROVIDER,
    description: 'ONNX Runtime provider for every model. `auto`: CUDA when it loads, else CPU, with a warning. `tensorrt`: TensorRT, ' +
      'else CUDA, else CPU, with a warning per fallback. `cuda`: start fails without CUDA. `cpu`: never tries a GPU.',
  })
  @IsOptional() @IsIn(['auto', 'tensorrt', 'cuda', 'cpu'], { message: 'EXECUTION_PROVIDER must be auto, tensorrt, cuda or cpu' }) EXECUTION_PROVIDER?: string;

  @EnvVar({
    default: DEFAULTS.VIDEO_ENCODER,
    description: 'Codec of lipsync outputs. `auto`: `h264_nvenc` when a test encode works at start, else libx264. ' +
      '`h264_nvenc`: start fails when it cannot encode.',
  })
  @IsOptional() @IsIn(['auto', 'libx264', 'h264_nvenc'], { message: 'VIDEO_ENCODER must be auto, libx264 or h264_nvenc' }) VIDEO_ENCODER?: string;

  @EnvVar({
    defaultText: 'guessed from the host',
    description: 'Where the worker runs, recorded with the registration. Unset: `salad` if `SALAD_MACHINE_ID` or ' +
      '`SALAD_CONTAINER_GROUP_ID` is set, `runpod` if `RUNPOD_POD_ID` is set, `vast` if `VAST_CONTAINERLABEL` is set or ' +
      '`CONTAINER_ID` starts with `C.`, else `local`.',
  })
  @IsOptional() @IsIn(PROVIDERS, { message: `WORKER_PROVIDER must be one of ${PROVIDERS.join(', ')}` }) WORKER_PROVIDER?: string;
  @EnvVar({ description: 'What the machine costs in USD per hour, sent with the registration for cost accounting.' })
  @IsOptional() @IsNumberString({}, { message: `GPU_HOURLY_COST ${NUMBER_HINT} (dollars per hour)` }) GPU_HOURLY_COST?: string;
  @EnvVar({ default: DEFAULTS.WORKER_SLOTS, description: 'Jobs run at once, 1–64.' })
  @IsOptional() @Matches(/^([1-9]|[1-5][0-9]|6[0-4])$/, { message: 'WORKER_SLOTS must be a whole number from 1 to 64' }) WORKER_SLOTS?: string;
  @EnvVar({
    defaultText: 'every kind this build has a pipeline for',
    description: `Comma-separated job kinds to take (${JOB_KIND_NAMES.map((k) => `\`${k}\``).join(', ')}). A kind without a pipeline stops start-up.`,
  })
  @IsOptional() @Matches(new RegExp(`^(${JOB_KIND_NAMES.map((k) => k.replace('.', '\\.')).join('|')})(,(${JOB_KIND_NAMES.map((k) => k.replace('.', '\\.')).join('|')}))*$`), { message: `WORKER_KINDS must be a comma-separated list of ${JOB_KIND_NAMES.join(', ')}` }) WORKER_KINDS?: string;
  @EnvVar({
    default: DEFAULTS.WORKER_PORT,
    description: 'Port of the worker\'s HTTP server (`/hc`, `/ping`, and `/generate` in queue mode), 0–65535. `0` picks a free ' +
      'port (the `ready` line shows it). Salad\'s sidecar and the templates expect 8000.',
  })
  @IsOptional() @Matches(/^(0|[1-9]\d{0,3}|[1-5]\d{4}|6[0-4]\d{3}|65[0-4]\d{2}|655[0-2]\d|6553[0-5])$/, { message: 'WORKER_PORT must be a port number (0-65535)' }) WORKER_PORT?: string;
  @EnvVar({ default: DEFAULTS.SHUTDOWN_GRACE_SEC, description: 'Seconds a SIGTERM waits for running jobs before releasing them to the queue.' })
  @IsOptional() @IsNumberString({}, { message: `SHUTDOWN_GRACE_SEC ${NUMBER_HINT}` }) SHUTDOWN_GRACE_SEC?: string;
  @EnvVar({ defaultText: 'the OS temp folder', description: 'Where each job gets its own scratch folder, removed when the job ends.' })
  @IsOptional() SCRATCH_DIR?: string;
  @EnvVar({
    defaultText: 'none',
    description: 'Comma-separated IP addresses or CIDR ranges (e.g. `127.0.0.1,10.0.0.0/8`) that job media URLs may reach although ' +
      'they are private, loopback or link-local. Every other such address is refused after DNS resolution, on every redirect ' +
      '(`media_forbidden`), so a job cannot make a rented host fetch its cloud metadata or its LAN. For local development only.',
  })
  @IsOptional() MEDIA_FETCH_ALLOW?: string;
  @EnvVar({ default: DEFAULTS.LOG_LEVEL, description: 'Log level. Not the orchestrator\'s values: `log` is refused.' })
  @IsOptional() @IsIn(['debug', 'info', 'warn', 'error'], { message: 'LOG_LEVEL must be debug, info, warn or error' }) LOG_LEVEL?: string;

  storageDriver(): string {
    return this.STORAGE_DRIVER ?? (this.B2_KEY_ID !== undefined ? 'b2' : 'local');
  }
  syncEnabled(): boolean {
    return (this.MODEL_SYNC_ENABLED ?? DEFAULTS.MODEL_SYNC_ENABLED) === 'true';
  }
  syncDriver(): string {
    return this.MODEL_SYNC_DRIVER ?? DEFAULTS.MODEL_SYNC_DRIVER;
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
  /** MEDIA_FETCH_ALLOW: private addresses job media URLs may reach anyway. */
  mediaFetchAllow: string[];
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
  const mediaFetchAllow = parseAddressList(e.MEDIA_FETCH_ALLOW);
  // The same class and VRAM the orchestrator reads from a legacy host with this GPU_CLASS_NAME.
  const legacyClass = !e.GPU_CLASS && e.GPU_CLASS_NAME ? parseGpuClassName(e.GPU_CLASS_NAME) : undefined;
  try {
    new AddressPolicy(mediaFetchAllow);
  } catch {
    problems.push('MEDIA_FETCH_ALLOW must be a comma-separated list of IP addresses or CIDR ranges, e.g. 127.0.0.1,10.0.0.0/8');
  }
  if (problems.length) throw new WorkerConfigError([...new Set(problems)]);

  const num = (v: string | undefined) => (v === undefined ? undefined : Number(v));
  const dir = (v: string | undefined, fallback: string) => path.resolve(cwd, v ?? fallback);
  const storage = storageSettings(e.storageDriver(), {
    keyId: e.B2_KEY_ID, appKey: e.B2_APP_KEY, b2Bucket: e.B2_BUCKET_NAME, s3Bucket: e.S3_BUCKET, authUrl: e.B2_AUTH_URL,
    endpoint: e.S3_ENDPOINT, region: e.S3_REGION, s3KeyId: e.S3_ACCESS_KEY_ID, s3Secret: e.S3_SECRET_ACCESS_KEY,
    localRoot: dir(e.LOCAL_STORAGE_DIR, DEFAULTS.LOCAL_STORAGE_DIR),
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
        prefix: e.MODEL_SYNC_PREFIX ?? DEFAULTS.MODEL_SYNC_PREFIX,
        sources: e.MODEL_SYNC_SOURCES!.split(','),
      }
    : undefined;
  return {
    mode: (e.WORKER_MODE as WorkerMode | undefined) ?? (e.BUFFER_WORKER_ID ? 'buffer' : 'queue'),
    fixedWorkerId: e.BUFFER_WORKER_ID,
    gpuClass: e.GPU_CLASS ?? legacyClass?.gpuClass,
    vramGbOverride: num(e.GPU_VRAM_GB) ?? legacyClass?.vramGb,
    orchestratorUrl: e.ORCHESTRATOR_BASE_URL.replace(/\/+$/, ''),
    internalApiKey: e.INTERNAL_API_KEY,
    storage,
    modelDir: dir(e.MODEL_DIR, DEFAULTS.MODEL_DIR),
    modelSync,
    requireRealModels: (e.REQUIRE_REAL_MODELS ?? DEFAULTS.REQUIRE_REAL_MODELS) === 'true',
    executionProvider: (e.EXECUTION_PROVIDER as WorkerConfig['executionProvider'] | undefined) ?? DEFAULTS.EXECUTION_PROVIDER,
    videoEncoder: (e.VIDEO_ENCODER as WorkerConfig['videoEncoder'] | undefined) ?? DEFAULTS.VIDEO_ENCODER,
    provider: (e.WORKER_PROVIDER as Provider | undefined) ?? guessProvider(env),
    hourlyCost: num(e.GPU_HOURLY_COST),
    slots: Number(e.WORKER_SLOTS ?? DEFAULTS.WORKER_SLOTS),
    kinds: e.WORKER_KINDS ? ([...new Set(e.WORKER_KINDS.split(','))] as JobKind[]) : undefined,
    port: Number(e.WORKER_PORT ?? DEFAULTS.WORKER_PORT),
    shutdownGraceMs: (num(e.SHUTDOWN_GRACE_SEC) ?? DEFAULTS.SHUTDOWN_GRACE_SEC) * 1000,
    scratchDir: dir(e.SCRATCH_DIR, os.tmpdir()),
    mediaFetchAllow,
    logLevel: (e.LOG_LEVEL as LogLevel | undefined) ?? DEFAULTS.LOG_LEVEL,
  };
}

/** Every variable WorkerEnv declares; anything else in the environment is ignored. */
export const WORKER_ENV_NAMES = [
  'WORKER_MODE', 'BUFFER_WORKER_ID', 'GPU_CLASS', 'GPU_CLASS_NAME', 'GPU_VRAM_GB', 'ORCHESTRATOR_BASE_URL', 'INTERNAL_API_KEY',
  'STORAGE_DRIVER', 'B2_KEY_ID', 'B2_APP_KEY', 'B2_BUCKET_NAME', 'B2_AUTH_URL', 'B2_LARGE_FILE_THRESHOLD_MB', 'B2_PART_SIZE_MB',
  'S3_ENDPOINT', 'S3_REGION', 'S3_BUCKET', 'S3_ACCESS_KEY_ID', 'S3_SECRET_ACCESS_KEY', 'LOCAL_STORAGE_DIR',
  'MODEL_DIR', 'MODEL_SYNC_ENABLED', 'MODEL_SYNC_DRIVER', 'MODEL_SYNC_BUCKET', 'MODEL_SYNC_KEY_ID', 'MODEL_SYNC_APP_KEY',
  'MODEL_SYNC_ENDPOINT', 'MODEL_SYNC_REGION', 'MODEL_SYNC_PREFIX', 'MODEL_SYNC_SOURCES', 'REQUIRE_REAL_MODELS', 'EXECUTION_PROVIDER', 'VIDEO_ENCODER',
  'WORKER_PROVIDER', 'GPU_HOURLY_COST', 'WORKER_SLOTS', 'WORKER_KINDS', 'WORKER_PORT', 'SHUTDOWN_GRACE_SEC', 'SCRATCH_DIR', 'MEDIA_FETCH_ALLOW', 'LOG_LEVEL',
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
    return { driver: 's3', s3: { bucket: f.s3Bucket!, endpoint: f.endpoint, region: f.region ?? S3_DEFAULT_REGION, accessKeyId: f.s3KeyId!, secretAccessKey: f.s3Secret!, forcePathStyle: f.endpoint !== undefined } };
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
