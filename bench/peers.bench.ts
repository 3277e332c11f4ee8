/**
 * `npm run bench:peers`: the same no-op jobs at the same concurrency through three PostgreSQL job
 * queues, each on its own fresh database of one embedded PostgreSQL:
 *  - the fleet: an orchestrator process, and HTTP workers (`WorkerClient`, status with claimNext);
 *  - graphile-worker, default settings;
 *  - pg-boss, its fetch()/complete() in the same one-job-at-a-time loop (see lib/pg-boss-queue.ts).
 * Method, the same for all three: enqueue the whole backlog first (batches of 1,000, each stamped
 * with its enqueue time), ANALYZE, then start the consumers and drain it. jobs/s counts from the
 * first job's start to the last job's start; enqueue->start is each job's start minus its stamp.
 * A warm-up drain runs first; then BENCH_ROUNDS rounds (default 1), the contenders' order rotating,
 * medians reported.
 * The last line is machine-readable; see docs/benchmarks.md.
 */
import { readFileSync } from 'node:fs';
import os from 'node:os';
import { Client } from 'pg';
import { startOrchestratorProcess } from '@avatar-fleet/orchestrator/dist/test/helpers/orchestrator-process';
import { vacuum } from './lib/backlog';
import { createDatabase, startBenchDatabase } from './lib/bench-database';
import { drainOverHttp, heartbeats, insertFleetJobs, registerHttpWorkers } from './lib/fleet-workers';
import { addGraphileJobs, startGraphileWorkers } from './lib/graphile-queue';
import { addPgBossJobs, startPgBoss, startPgBossWorkers } from './lib/pg-boss-queue';
import { percentile } from './lib/stats';

const JOBS = Number(process.env.BENCH_JOBS ?? 20_000);
const WARMUP_JOBS = Number(process.env.BENCH_WARMUP_JOBS ?? 2_000);
// One round by default: pg-boss alone needs about 3 minutes for 20,000 jobs on 2 cores.
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 1);

/** One queue under test. `start` brings up CONCURRENCY consumers and resolves to their stop function. */
interface Contender {
  key: 'fleet' | 'graphile' | 'pgboss';
  label: string;
  url: string;
  enqueue(count: number): Promise<void>;
  start(onStart: (enqueuedAt: number) => void): Promise<() => Promise<void>>;
}

const CONCURRENCY = 8;
/** Jobs per enqueue call: graphile's addJobs, pg-boss's insert, one INSERT for the fleet. */
const BATCH = 1_000;
const GPU_CLASS = 'bench-peers';
/** Not a time limit on the measurement: only a stuck queue (a lost job) trips it. */
const STALL_MS = 60_000;

interface Measurement {
  jobsPerSec: number;
  p50: number;
  p99: number;
}

function versionOf(pkg: string): string {
  return (JSON.parse(readFileSync(require.resolve(`${pkg}/package.json`), 'utf8')) as { version: string }).version;
}

async function serverVersion(url: string): Promise<string> {
  const client = new Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query<{ server_version: string }>('SHOW server_version')).rows[0]!.server_version;
  } finally {
    await client.end();
  }
}

/** Enqueues `jobs`, then drains them with `c`'s consumers; every step is the same for every contender. */
async function measure(c: Contender, all: Contender[], jobs: number): Promise<Measurement> {
  // Clears the dead rows every contender's earlier drains left, so no autovacuum debt of one queue
  // lands in another's measurement.
  for (const other of all) await vacuum(other.url);
  await c.enqueue(jobs);
  // The planner sees the backlog before the drain, whichever queue it is.
  await vacuum(c.url, { analyzeOnly: true });
  const latencies: number[] = [];
  let first = 0;
  let last = 0;
  let lastProgress = performance.now();
  let finish!: () => void;
  const finished = new Promise<void>((resolve) => (finish = resolve));
  const stop = await c.start((enqueuedAt) => {
    const now = performance.now();
    if (latencies.length === 0) first = now;
    latencies.push(now - enqueuedAt);
    lastProgress = now;
    if (latencies.length === jobs) {
      last = now;
      finish();
    }
  });
  const watchdog = setInterval(() => {
    if (performance.now() - lastProgress > STALL_MS) {
      console.error(`${c.label}: no job started for ${STALL_MS / 1000} s, ${latencies.length} of ${jobs} started`);
      process.exit(1);
    }
  }, 1_000);
  await finished;
  clearInterval(watchdog);
  await stop();
  // A queue that ran a job twice would have reached `jobs` early.
  if (latencies.length !== jobs) throw new Error(`${c.label}: ${latencies.length} job starts for ${jobs} jobs`);
  return { jobsPerSec: (jobs - 1) / ((last - first) / 1000), p50: percentile(latencies, 0.5), p99: percentile(latencies, 0.99) };
}

function median(values: number[]): number {
  return percentile(values, 0.5);
}

async function main(): Promise<void> {
  const db = await startBenchDatabase();
  const graphileUrl = await createDatabase(db.url, 'peers_graphile');
  const pgBossUrl = await createDatabase(db.url, 'peers_pgboss');
  const orch = await startOrchestratorProcess(db.url, { LOG_LEVEL: 'warn', CLAIM_POLL_MS: '5000' });
  const boss = await startPgBoss(pgBossUrl);
  try {
    const contenders: Contender[] = [
      {
        key: 'fleet',
        label: 'fleet, HTTP claimNext',
        url: db.url,
        enqueue: (count) => insertFleetJobs(db.url, count, GPU_CLASS, BATCH),
        async start(onStart) {
          const workers = await registerHttpWorkers(() => orch.worker(), GPU_CLASS, CONCURRENCY);
          const stopHeartbeats = heartbeats(workers);
          // HTTP workers stop by themselves once the queue is empty.
          const drained = drainOverHttp(workers, true, (job) => onStart(Number(job.input.enqueuedAt)));
          return async () => {
            await drained;
            stopHeartbeats();
          };
        },
      },
      {
        key: 'graphile',
        label: `graphile-worker ${versionOf('graphile-worker')}`,
        url: graphileUrl,
        enqueue: (count) => addGraphileJobs(graphileUrl, count, BATCH),
        async start(onStart) {
          const runner = await startGraphileWorkers(graphileUrl, CONCURRENCY, (payload) => onStart(payload.enqueuedAt));
          return () => runner.stop();
        },
      },
      {
        key: 'pgboss',
        label: `pg-boss ${versionOf('pg-boss')}`,
        url: pgBossUrl,
        enqueue: (count) => addPgBossJobs(boss, count, BATCH),
        async start(onStart) {
          return startPgBossWorkers(boss, CONCURRENCY, (payload) => onStart(payload.enqueuedAt));
        },
      },
    ];
    console.log(`PostgreSQL ${await serverVersion(db.url)} (embedded), Node ${process.version}; ${JOBS} no-op jobs, ` +
      `concurrency ${CONCURRENCY}, backlog enqueued first in batches of ${BATCH}`);
    // Other work on a shared machine skews every figure; the load average before the run shows whether there was any.
    console.log(`load average at start ${os.loadavg()[0]!.toFixed(2)}; warm-up: ${WARMUP_JOBS} jobs through each`);
    for (const c of contenders) await measure(c, contenders, WARMUP_JOBS);
    const results = new Map(contenders.map((c) => [c.key, [] as Measurement[]]));
    for (let r = 0; r < ROUNDS; r++) {
      const order = contenders.map((_, i) => contenders[(i + r) % contenders.length]!);
      const line: string[] = [];
      for (const c of order) {
        const m = await measure(c, contenders, JOBS);
        results.get(c.key)!.push(m);
        line.push(`${c.label} ${Math.round(m.jobsPerSec)} jobs/s (p50 ${Math.round(m.p50)} ms)`);
      }
      console.log(`round ${r + 1}: ${line.join(', ')}`);
    }
    const summary = new Map(contenders.map((c) => {
      const runs = results.get(c.key)!;
      return [c.key, {
        jobsPerSec: median(runs.map((m) => m.jobsPerSec)),
        p50: median(runs.map((m) => m.p50)),
        p99: median(runs.map((m) => m.p99)),
      }];
    }));
    console.log(`\nmedians over ${ROUNDS} round(s); enqueue->start includes the wait behind the whole backlog`);
    console.log(`${'system'.padEnd(28)}${'jobs/s'.padStart(8)}${'p50 ms'.padStart(10)}${'p99 ms'.padStart(10)}`);
    for (const c of contenders) {
      const s = summary.get(c.key)!;
      console.log(`${c.label.padEnd(28)}${String(Math.round(s.jobsPerSec)).padStart(8)}` +
        `${String(Math.round(s.p50)).padStart(10)}${String(Math.round(s.p99)).padStart(10)}`);
    }
    const field = (key: Contender['key']) => {
      const s = summary.get(key)!;
      return { rate: `${key}_jobs_per_s=${Math.round(s.jobsPerSec)}`, lat: `${key}_p50_ms=${Math.round(s.p50)} ${key}_p99_ms=${Math.round(s.p99)}` };
    };
    const keys = contenders.map((c) => field(c.key));
    console.log(`peers ${keys.map((k) => k.rate).join(' ')} ${keys.map((k) => k.lat).join(' ')}`);
  } finally {
    await boss.stop({ graceful: false }).catch(() => undefined);
    await orch.stop();
    await db.stop();
  }
}

main().catch((error: Error) => {
  console.error(error.stack ?? error.message);
  process.exit(1);
});
