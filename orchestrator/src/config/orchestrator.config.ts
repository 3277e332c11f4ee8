import { Transform } from 'class-transformer';
import { IsIn, IsInt, IsOptional, IsString, Matches, Max, Min, MinLength, ValidateBy } from 'class-validator';
import { AddressPolicy, EnvVar, OWNER_NAME_SOURCE, parseAddressList, validateDto } from '@avatar-fleet/contracts';

const toInt = ({ value }: { value: unknown }) => (value === undefined || value === '' ? undefined : Number(value));

/** One `owner:key` pair of API_KEYS: the owner name becomes a storage path segment (OWNER_NAME_SOURCE). */
const API_KEY_PAIR = `${OWNER_NAME_SOURCE}:[^\\s,:]{16,}`;

/** Whether an allowlist setting is IP addresses and CIDR ranges only (AddressPolicy refuses anything else). */
function addressListValid(setting: string): boolean {
  try {
    new AddressPolicy(parseAddressList(setting));
    return true;
  } catch {
    return false;
  }
}

/**
 * Every environment variable the orchestrator reads, validated once at start.
 * A bad value stops start-up with one message that names every bad variable (never its value).
 * `@EnvVar` holds each variable's entry in docs/configuration.md (`npm run docs:config`).
 */
export class OrchestratorConfig {
  @EnvVar({
    description: 'PostgreSQL URL, `postgres://user:password@host:5432/db` (or `postgresql://`). **Required in production.** ' +
      'Unset: an embedded PostgreSQL starts in `EMBEDDED_PG_DIR`, for local runs only (in the image that fails, ' +
      'because `/app` is read-only to the `node` user).',
    secret: true,
  })
  @IsOptional() @Matches(/^postgres(ql)?:\/\/\S+$/, { message: 'DATABASE_URL must look like postgres://user:password@host:5432/db' })
  DATABASE_URL?: string;

  @EnvVar({ description: 'Data folder of the embedded PostgreSQL, kept between runs. Not used when `DATABASE_URL` is set.' })
  @IsString() EMBEDDED_PG_DIR: string = '.data/postgres';
  @EnvVar({ description: 'Port of the embedded PostgreSQL, which listens on `127.0.0.1` only. Not used when `DATABASE_URL` is set.' })
  @Transform(toInt) @IsInt() @Min(1) @Max(65535) EMBEDDED_PG_PORT: number = 54329;

  @EnvVar({ description: 'Listen address. A container must listen on `0.0.0.0` (the image sets it).' })
  @IsString() HOST: string = '127.0.0.1';
  @EnvVar({ description: 'Listen port. `0` picks a free port; the start-up output shows the URL.' })
  @Transform(toInt) @IsInt() @Min(0) @Max(65535) PORT: number = 8080;

  @EnvVar({
    description: 'Product API keys as `name:key` pairs separated by commas, e.g. `shop:0123456789abcdef0123`. A name has 1-64 ' +
      'letters, digits, `_`, `.` and `-`, starts with a letter or digit and has no `..`: it is also the owner\'s folder in object ' +
      'storage, `tenants/<name>/`, where that owner\'s inputs, avatars and outputs live. Each key has at least 16 characters and ' +
      'no spaces, commas or colons. The name owns the jobs its key creates, and a key sees only its own jobs and storage keys. ' +
      'Sent as `Authorization: Bearer <key>` or `X-Api-Key`.',
    secret: true,
  })
  @IsString() @Matches(new RegExp(`^\\s*${API_KEY_PAIR}\\s*(,\\s*${API_KEY_PAIR}\\s*)*$`), {
    message: 'API_KEYS must be name:key pairs separated by commas, each name 1-64 letters, digits, _ . - starting with a letter or digit ' +
      'and without .., each key at least 16 characters without spaces',
  })
  API_KEYS!: string;

  @EnvVar({
    description: 'Enrolment key of the worker API (`/internal/...`): at least 16 characters, no whitespace. Every worker holds the ' +
      'same value and uses it to register; registering returns the worker\'s own token, which every later call of that worker ' +
      'must send. Hosts that never register (legacy, seed 003) use this key for everything while `LEGACY_WORKERS=allow`.',
    secret: true,
  })
  @IsString() @MinLength(16, { message: 'INTERNAL_API_KEY must be at least 16 characters' })
  @Matches(/^\S+$/, { message: 'INTERNAL_API_KEY must not contain whitespace (check for a stray newline)' })
  INTERNAL_API_KEY!: string;

  @EnvVar({
    description: 'Operator keys as `name:key` pairs separated by commas, the format of `API_KEYS`. An operator key manages the ' +
      'fleet: lists and commands workers, revokes them, sees and acts on every owner\'s jobs, and reads `/metrics`. It cannot ' +
      'create jobs. Unset: no key can do any of that. A key may not also be a product key or `INTERNAL_API_KEY`.',
    secret: true,
  })
  @IsOptional() @IsString() @Matches(/^\s*[A-Za-z0-9_.-]+:[^\s,:]{16,}\s*(,\s*[A-Za-z0-9_.-]+:[^\s,:]{16,}\s*)*$/, {
    message: 'OPERATOR_KEYS must be name:key pairs separated by commas, each key at least 16 characters without spaces',
  })
  OPERATOR_KEYS?: string;

  @EnvVar({
    description: '`allow`: hosts that never register (the seed-003 MuseTalk worker) may heartbeat, claim and report with ' +
      '`INTERNAL_API_KEY` alone; each is registered on its first heartbeat or claim and logged as legacy. They can act only ' +
      'as workers without a token of their own, never as a worker that registered. `refuse`: that key only registers, and ' +
      'every other worker call needs the worker\'s token. Set `refuse` once no legacy host is left.',
  })
  @IsIn(['allow', 'refuse']) LEGACY_WORKERS: 'allow' | 'refuse' = 'allow';

  @EnvVar({ description: 'Heartbeat interval in seconds, handed to workers when they register.' })
  @Transform(toInt) @IsInt() @Min(1) @Max(300) HEARTBEAT_INTERVAL_SEC: number = 10;
  @EnvVar({
    description: 'Lease time-to-live in seconds: a lease that no heartbeat or progress report renews for this long expires, ' +
      'and its job goes back to the queue. The default is 2.5 heartbeat intervals, so one lost heartbeat is forgiven, and ' +
      'a dead worker\'s job is requeued within 30 s of its death even when it died just after a heartbeat.',
  })
  @Transform(toInt) @IsInt() @Min(1) @Max(3600) LEASE_TTL_SEC: number = 25;
  @EnvVar({ description: 'A worker that sends no heartbeat for this many intervals is marked offline.' })
  @Transform(toInt) @IsInt() @Min(2) @Max(100) OFFLINE_AFTER_INTERVALS: number = 3;
  @EnvVar({
    description: 'A job whose lease expires this many times fails with `too_many_lease_losses`: such a job may be killing its workers.',
  })
  @Transform(toInt) @IsInt() @Min(1) @Max(100) MAX_LEASE_LOSSES: number = 5;
  @EnvVar({
    description: 'How many times a job may be handed back by workers that stop gracefully while running it (deregister, a drain ' +
      'past its grace period) before it fails with `too_many_releases`. Each such release also backs the job off, as an ' +
      'expiry does. A worker that restarts under a fixed id while running a job counts against `MAX_LEASE_LOSSES` instead.',
  })
  @Transform(toInt) @IsInt() @Min(1) @Max(1000) MAX_RELEASES: number = 10;
  @EnvVar({ description: 'How often the reaper sweeps expired leases, timed-out attempts and silent workers, in ms.' })
  @Transform(toInt) @IsInt() @Min(50) @Max(60_000) REAPER_INTERVAL_MS: number = 1000;
  @EnvVar({
    description: 'Days a finished job (with its attempts) and a stopped or offline worker are kept. Older ones are deleted in the ' +
      'background, `PRUNE_BATCH` rows per transaction, by one replica at a time.',
  })
  @Transform(toInt) @IsInt() @Min(1) @Max(3650) RETENTION_DAYS: number = 30;
  @EnvVar({ description: 'How often the retention pass runs, in seconds. Each pass deletes batch after batch until nothing is left to prune.' })
  @Transform(toInt) @IsInt() @Min(1) @Max(86_400) PRUNE_INTERVAL_SEC: number = 300;
  @EnvVar({ description: 'Rows the retention pass deletes per transaction: small enough that no delete holds locks or builds WAL for long.' })
  @Transform(toInt) @IsInt() @Min(1) @Max(100_000) PRUNE_BATCH: number = 5000;
  @EnvVar({
    description: 'How often the job counts that `/metrics` serves (`fleet_jobs`) are recounted, in seconds. A scrape never waits ' +
      'for the count: it reads the last one (its age is `fleet_jobs_snapshot_age_seconds`), so a scrape stays cheap however large ' +
      'the jobs table grows, while the database counts once per interval per replica.',
  })
  @Transform(toInt) @IsInt() @Min(1) @Max(3600) METRICS_REFRESH_SEC: number = 15;
  @EnvVar({ description: 'Backstop poll of parked long-poll claims, in ms, in case a NOTIFY was missed. The orchestrator adds ±25 % jitter.' })
  @Transform(toInt) @IsInt() @Min(100) @Max(60_000) CLAIM_POLL_MS: number = 5000;
  @EnvVar({
    description: 'PostgreSQL pool size per replica. Each replica also holds one connection for `LISTEN` and a second pool ' +
      'of up to half this size for claims, lease renewals and progress.',
  })
  @Transform(toInt) @IsInt() @Min(2) @Max(500) DB_POOL_SIZE: number = 16;
  @EnvVar({ description: 'Log level.' })
  @IsIn(['error', 'warn', 'log', 'debug', 'verbose']) LOG_LEVEL: 'error' | 'warn' | 'log' | 'debug' | 'verbose' = 'log';
  @EnvVar({ description: 'Largest accepted request body, in bytes. Larger bodies get `413 payload_too_large`.' })
  @Transform(toInt) @IsInt() @Min(1024) @Max(64 * 1024 * 1024) BODY_LIMIT_BYTES: number = 1024 * 1024;
  @EnvVar({
    description: 'Comma-separated IP addresses or CIDR ranges (e.g. `127.0.0.1,10.0.0.0/8`) that job webhooks may reach although ' +
      'they are private, loopback or link-local: the syntax and meaning of the worker\'s `MEDIA_FETCH_ALLOW`. A create whose ' +
      '`webhookUrl` host is such an address (in any spelling, e.g. `0x7f000001`) or an obviously local name (`localhost`, ' +
      '`*.localhost`, `*.local`, `*.internal`) is refused with 400 unless this list allows it; a local name is then resolved, ' +
      'and every address it has must be allowed. Other names are not resolved at submit time, so one that resolves to a private ' +
      'address is accepted here: the webhook sender will check every DNS answer when it connects, and refuse such addresses. ' +
      'For local development only.',
  })
  @IsOptional() @IsString() @ValidateBy({
    name: 'isAddressList',
    validator: {
      validate: (value: unknown) => typeof value === 'string' && addressListValid(value),
      defaultMessage: () => 'WEBHOOK_ALLOW must be a comma-separated list of IP addresses or CIDR ranges, e.g. 127.0.0.1,10.0.0.0/8',
    },
  })
  WEBHOOK_ALLOW?: string;

  /** Parsed WEBHOOK_ALLOW: the addresses and ranges webhooks may reach although they are private. */
  webhookAllow(): string[] {
    return parseAddressList(this.WEBHOOK_ALLOW);
  }

  /** Parsed API_KEYS: key -> owner name. */
  apiKeys(): Map<string, string> {
    return keyPairs(this.API_KEYS);
  }

  /** Parsed OPERATOR_KEYS: key -> operator name. */
  operatorKeys(): Map<string, string> {
    return keyPairs(this.OPERATOR_KEYS ?? '');
  }
}

/** The `name:key` pairs of a key list (API_KEYS, OPERATOR_KEYS), in order. */
function namedKeys(list: string): { name: string; key: string }[] {
  return list.split(',').filter((pair) => pair.trim()).map((pair) => {
    const [name, key] = pair.trim().split(':') as [string, string];
    return { name, key };
  });
}

function keyPairs(list: string): Map<string, string> {
  return new Map(namedKeys(list).map(({ name, key }) => [key, name]));
}

export class ConfigError extends Error {
  override name = 'ConfigError';
}

/** Reads only the variables the class declares, so unrelated environment never fails validation. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): OrchestratorConfig {
  const known = Object.keys(new OrchestratorConfig()).concat(['DATABASE_URL', 'API_KEYS', 'INTERNAL_API_KEY', 'OPERATOR_KEYS', 'WEBHOOK_ALLOW']);
  const picked: Record<string, string> = {};
  for (const name of new Set(known)) {
    const value = env[name];
    if (value !== undefined && value !== '') picked[name] = value;
  }
  const result = validateDto(OrchestratorConfig, picked);
  const fields = result.ok ? [] : [...result.fields];
  // Only a well-formed list can be read pair by pair; a malformed one is reported as such above.
  for (const variable of ['API_KEYS', 'OPERATOR_KEYS'] as const) {
    const shared = picked[variable] && !fields.some((f) => f.field === variable) ? sharedKeys(picked[variable]) : [];
    if (shared.length) fields.push({ field: variable, problems: shared });
  }
  if (result.ok) fields.push(...crossRoleKeys(result.value));
  if (!result.ok || fields.length) {
    const lines = fields.map((f) => `  ${f.field}: ${f.problems.join('; ')}`);
    throw new ConfigError(`invalid configuration (${fields.length} variable(s)):\n${lines.join('\n')}`);
  }
  return result.value;
}

/**
 * One problem per key that a key list (API_KEYS, OPERATOR_KEYS) gives more than one name: a key
 * identifies its owner, so such a key would silently act as whichever name came last. Names the
 * owners, never the key.
 */
function sharedKeys(list: string): string[] {
  const owners = new Map<string, Set<string>>();
  for (const { name, key } of namedKeys(list)) owners.set(key, (owners.get(key) ?? new Set()).add(name));
  return [...owners.values()]
    .filter((names) => names.size > 1)
    .map((names) => `one key is listed for the owners ${[...names].join(', ')}; give each owner its own key`);
}

/**
 * A key of two roles would act as whichever role is checked first: a product key that is also an
 * operator key would run the fleet. Names the variables, never the key.
 */
function crossRoleKeys(config: OrchestratorConfig): { field: string; problems: string[] }[] {
  const product = config.apiKeys();
  const operator = config.operatorKeys();
  const out: { field: string; problems: string[] }[] = [];
  for (const [key, name] of operator) {
    if (product.has(key)) out.push({ field: 'OPERATOR_KEYS', problems: [`the key of operator ${name} is also a product key in API_KEYS; give each role its own keys`] });
    if (key === config.INTERNAL_API_KEY) out.push({ field: 'OPERATOR_KEYS', problems: [`the key of operator ${name} is INTERNAL_API_KEY; give each role its own keys`] });
  }
  for (const [key, name] of product) {
    if (key === config.INTERNAL_API_KEY) out.push({ field: 'API_KEYS', problems: [`the key of ${name} is INTERNAL_API_KEY; give each role its own keys`] });
  }
  return out;
}
