/**
 * The hostile-input fuzzer against a real orchestrator process: shared by `npm run fuzz`
 * (bench/fuzz.ts, 1,000 requests per endpoint) and orchestrator/test/fuzz.test.ts (fewer).
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { Client, Pool } from 'pg';
import { FuzzWorld } from './fuzz-endpoints';
import { runFuzz, summaryLine, type FuzzOptions, type FuzzReport, type FuzzTarget } from './fuzz-runner';
import { API_KEY, INTERNAL_KEY, OPERATOR_KEY, OTHER_API_KEY, startOrchestratorProcess, type OrchestratorProcess } from './orchestrator-process';

export { mergeReports, runFuzz, summaryLine, type FuzzReport } from './fuzz-runner';

/**
 * Heartbeats, leases and offline marks far longer than a run, so that the reaper changes nothing
 * while it lasts: every change to the tables then comes from a request. The most verbose log
 * level gives secrets the most chances to leak into a log line.
 */
const QUIET_REAPER = { HEARTBEAT_INTERVAL_SEC: '300', OFFLINE_AFTER_INTERVALS: '100', LEASE_TTL_SEC: '3600', LOG_LEVEL: 'verbose' };

/**
 * A login role with a random password on the same server, so that the orchestrator's DATABASE_URL
 * holds a password worth looking for in answers and logs (the embedded server's own is `postgres`).
 */
async function roleWithSecret(databaseUrl: string): Promise<{ url: string; password: string; drop(): Promise<void> }> {
  const role = `fuzz_${randomBytes(4).toString('hex')}`;
  const password = randomBytes(16).toString('hex');
  const run = async (sql: string) => {
    const admin = new Client({ connectionString: databaseUrl });
    await admin.connect();
    try {
      await admin.query(sql);
    } finally {
      await admin.end();
    }
  };
  await run(`CREATE ROLE ${role} LOGIN SUPERUSER PASSWORD '${password}'`);
  const url = new URL(databaseUrl);
  url.username = role;
  url.password = password;
  return { url: url.toString(), password, drop: () => run(`DROP ROLE IF EXISTS ${role}`) };
}

/** A running orchestrator with its fixtures, ready to be fuzzed (by runFuzz, or by a worker's fuzzer). */
export interface FuzzSession {
  orch: OrchestratorProcess;
  target: FuzzTarget;
  bodyLimit: number;
}

/**
 * Starts an orchestrator on `databaseUrl` (a migrated, empty database) with a secret-bearing
 * DATABASE_URL and the fixtures every endpoint shares, runs `fuzz`, and stops it all.
 */
export async function withFuzzSession<T>(databaseUrl: string, bodyLimit: number, fuzz: (session: FuzzSession) => Promise<T>): Promise<T> {
  const role = await roleWithSecret(databaseUrl);
  const orch = await startOrchestratorProcess(role.url, { ...QUIET_REAPER, BODY_LIMIT_BYTES: String(bodyLimit) });
  const pool = new Pool({ connectionString: databaseUrl, max: 2 });
  try {
    // Worker tokens join the secrets as fixtures register workers.
    const secrets = [API_KEY, OTHER_API_KEY, OPERATOR_KEY, INTERNAL_KEY, role.password];
    const world = new FuzzWorld(orch.fleet(), orch.fleet(OTHER_API_KEY), orch.operator(), orch.worker(), pool, secrets);
    await world.victims();
    const target: FuzzTarget = {
      url: orch.url,
      pool,
      world,
      keys: { product: API_KEY, other: OTHER_API_KEY, operator: OPERATOR_KEY, internal: INTERNAL_KEY, tokens: world.foreignTokens },
      secrets,
      alive: () => orch.proc.exitCode === null && orch.proc.signalCode === null,
      output: () => orch.output(),
    };
    return await fuzz({ orch, target, bodyLimit });
  } finally {
    await pool.end();
    await orch.stop();
    await role.drop();
  }
}

/** Fuzzes every orchestrator endpoint (see withFuzzSession). The log goes to `options.log`, never a secret. */
export function fuzzOrchestrator(databaseUrl: string, options: Omit<FuzzOptions, 'bodyLimit'> & { bodyLimit?: number }): Promise<FuzzReport> {
  const bodyLimit = options.bodyLimit ?? 1024 * 1024;
  return withFuzzSession(databaseUrl, bodyLimit, ({ target }) => runFuzz(target, { ...options, bodyLimit }));
}

/** For tests: `requests` were sent and every other count is zero; the message lists what went wrong. */
export function assertClean(report: FuzzReport, requests: number, log: readonly string[] = []): void {
  const detail = `${log.join('\n')}\n${report.failures.join('\n')}\n${summaryLine(report)}`;
  assert.equal(report.requests, requests, detail);
  const { status5xx, crashes, stateChanges, leakedSecrets, unnamed4xx, noAnswer } = report;
  assert.deepEqual(
    { status5xx, crashes, stateChanges, leakedSecrets, unnamed4xx, noAnswer },
    { status5xx: 0, crashes: 0, stateChanges: 0, leakedSecrets: 0, unnamed4xx: 0, noAnswer: 0 },
    detail,
  );
}
