import { Transform } from 'class-transformer';
import { IsIn, IsInt, IsOptional, IsString, Matches, Max, Min, MinLength } from 'class-validator';
import { validateDto } from '@avatar-fleet/contracts';

const toInt = ({ value }: { value: unknown }) => (value === undefined || value === '' ? undefined : Number(value));

/**
 * Every environment variable the orchestrator reads, validated once at start.
 * A bad value stops start-up with one message that names every bad variable (never its value).
 */
export class OrchestratorConfig {
  /** PostgreSQL URL. Unset: an embedded PostgreSQL is started in EMBEDDED_PG_DIR. */
  @IsOptional() @Matches(/^postgres(ql)?:\/\/\S+$/, { message: 'DATABASE_URL must look like postgres://user:password@host:5432/db' })
  DATABASE_URL?: string;

  /** Data folder of the embedded PostgreSQL (kept between runs). */
  @IsString() EMBEDDED_PG_DIR: string = '.data/postgres';
  @Transform(toInt) @IsInt() @Min(1) @Max(65535) EMBEDDED_PG_PORT: number = 54329;

  @IsString() HOST: string = '127.0.0.1';
  /** 0 picks a free port; the chosen URL is printed at start. */
  @Transform(toInt) @IsInt() @Min(0) @Max(65535) PORT: number = 8080;

  /** Product API keys, `name:key` pairs separated by commas. The name owns the jobs the key creates. */
  @IsString() @Matches(/^\s*[A-Za-z0-9_.-]+:[^\s,:]{16,}\s*(,\s*[A-Za-z0-9_.-]+:[^\s,:]{16,}\s*)*$/, {
    message: 'API_KEYS must be name:key pairs separated by commas, each key at least 16 characters without spaces',
  })
  API_KEYS!: string;

  /** Bearer key of the worker API; at least 16 characters. */
  @IsString() @MinLength(16, { message: 'INTERNAL_API_KEY must be at least 16 characters' })
  @Matches(/^\S+$/, { message: 'INTERNAL_API_KEY must not contain whitespace (check for a stray newline)' })
  INTERNAL_API_KEY!: string;

  @Transform(toInt) @IsInt() @Min(1) @Max(300) HEARTBEAT_INTERVAL_SEC: number = 10;
  /**
   * Lease time-to-live; a lease not renewed by a heartbeat or progress report for this long expires.
   * 2.5 heartbeat intervals: one lost heartbeat is forgiven, and a dead worker's job is requeued
   * within 30 s of its death even when it died just after a heartbeat.
   */
  @Transform(toInt) @IsInt() @Min(1) @Max(3600) LEASE_TTL_SEC: number = 25;
  /** A worker silent for this many heartbeat intervals is marked offline. */
  @Transform(toInt) @IsInt() @Min(2) @Max(100) OFFLINE_AFTER_INTERVALS: number = 3;
  /** A job whose leases were lost this many times fails (a job that kills its workers). */
  @Transform(toInt) @IsInt() @Min(1) @Max(100) MAX_LEASE_LOSSES: number = 5;
  @Transform(toInt) @IsInt() @Min(50) @Max(60_000) REAPER_INTERVAL_MS: number = 1000;
  /** Backstop poll of parked claims, in case a NOTIFY was missed. */
  @Transform(toInt) @IsInt() @Min(100) @Max(60_000) CLAIM_POLL_MS: number = 5000;
  @Transform(toInt) @IsInt() @Min(2) @Max(500) DB_POOL_SIZE: number = 16;
  @IsIn(['error', 'warn', 'log', 'debug', 'verbose']) LOG_LEVEL: 'error' | 'warn' | 'log' | 'debug' | 'verbose' = 'log';
  /** Refuse request bodies larger than this many bytes. */
  @Transform(toInt) @IsInt() @Min(1024) @Max(64 * 1024 * 1024) BODY_LIMIT_BYTES: number = 1024 * 1024;

  /** Parsed API_KEYS: key -> owner name. */
  apiKeys(): Map<string, string> {
    const map = new Map<string, string>();
    for (const pair of this.API_KEYS.split(',')) {
      const [name, key] = pair.trim().split(':') as [string, string];
      map.set(key, name);
    }
    return map;
  }
}

export class ConfigError extends Error {
  override name = 'ConfigError';
}

/** Reads only the variables the class declares, so unrelated environment never fails validation. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): OrchestratorConfig {
  const known = Object.keys(new OrchestratorConfig()).concat(['DATABASE_URL', 'API_KEYS', 'INTERNAL_API_KEY']);
  const picked: Record<string, string> = {};
  for (const name of new Set(known)) {
    const value = env[name];
    if (value !== undefined && value !== '') picked[name] = value;
  }
  const result = validateDto(OrchestratorConfig, picked);
  if (!result.ok) {
    const lines = result.fields.map((f) => `  ${f.field}: ${f.problems.join('; ')}`);
    throw new ConfigError(`invalid configuration (${result.fields.length} variable(s)):\n${lines.join('\n')}`);
  }
  return result.value;
}
