/**
 * `npm run bench:backlog`: how the queue behaves when the jobs table is large. One local PostgreSQL
 * holding BENCH_BACKLOG_JOBS (default 1,000,000) queued jobs of mixed kinds and GPU classes, at whose
 * head sit 50,000 jobs the benchmark's workers may not take (another kind, a GPU class nobody has,
 * or a backoff not yet over); one orchestrator process; HTTP workers claiming one job at a time.
 * Measures the claim's latency over HTTP and the time of a `/metrics` scrape; then adds
 * BENCH_PRUNED_JOBS (default 200,000) jobs finished 40 days ago, each with an attempt, and reads how
 * fast the orchestrator's retention pass deletes them. The last line is machine-readable (see
 * docs/benchmarks.md).
 */
import { Pool } from 'pg';
import { OPERATOR_KEY, startOrchestratorProcess } from '@avatar-fleet/orchestrator/dist/test/helpers/orchestrator-process';
import { vacuum } from './lib/backlog';
import { startBenchDatabase } from './lib/bench-database';
import { registerWorker } from '@avatar-fleet/orchestrator/dist/test/helpers/fixtures';
import { heartbeats } from './lib/fleet-workers';
import { percentile, round } from './lib/stats';

const TOTAL = Number(process.env.BENCH_BACKLOG_JOBS ?? 1_000_000);
const HEAD = Math.min(50_000, Math.floor(TOTAL / 4));
const CLAIMS = Number(process.env.BENCH_CLAIMS ?? 400);
const SCRAPES = 5;
const PRUNED = Number(process.env.BENCH_PRUNED_JOBS ?? 200_000);
const BATCH = 100_000;

/**
 * The backlog, straight into the table in batches (the product API makes one job per request).
 * Head (priority 10, so every claim meets it first): a third another kind, a third for a GPU class
 * no worker has, a third in backoff for an hour. Body (priority 0): lipsync and avatar.prepare,
 * with no GPU class, RTX 4090 or A100, in turn, so about a third of it is the workers' to take.
 */
async function fillBacklog(url: string): Promise<void> {
  const pool = new Pool({ connectionString: url, max: 1 });
  const insert = (first: number, count: number, priority: number, kind: string, gpuClass: string, runAfter: string) => pool.query(
    `INSERT INTO jobs (owner, kind, state, input, priority, gpu_class, max_attempts, timeout_sec, backoff_base_ms, backoff_max_ms, run_after, created_at)
     SELECT 'product', ${kind}, 'queued', jsonb_build_object('avatarId', 'a', 'audio', 'a.wav', 'n', g), $3, ${gpuClass}, 3, 900, 2000, 60000,
            ${runAfter}, now() - make_interval(secs => ($1::int + $2::int - g) / 1000.0)
     FROM generate_series($1::int + 1, $1::int + $2::int) g`,
    [first, count, priority],
  );
  try {
    const third = Math.floor(HEAD / 3);
    await insert(0, third, 10, `'avatar.prepare'`, 'NULL', 'now()');
    await insert(third, third, 10, `'lipsync'`, `'H100'`, 'now()');
    await insert(2 * third, HEAD - 2 * third, 10, `'lipsync'`, 'NULL', `now() + interval '1 hour'`);
    for (let first = HEAD; first < TOTAL; first += BATCH) {
      await insert(first, Math.min(BATCH, TOTAL - first), 0,
        `(CASE WHEN g % 2 = 0 THEN 'lipsync' ELSE 'avatar.prepare' END)`,
        `(CASE g % 3 WHEN 0 THEN NULL WHEN 1 THEN 'RTX 4090' ELSE 'A100' END)`, 'now()');
    }
  } finally {
    await pool.end();
  }
}

/**
 * Jobs finished 40 days ago, past the 30 days the orchestrator keeps, and the rate of the pass that
 * deletes them, as its own log line reports it (rows deleted over the pass's time).
 */
async function pruneRowsPerSecond(url: string, output: () => string): Promise<number> {
  const pool = new Pool({ connectionString: url, max: 1 });
  try {
    await pool.query(
      `WITH made AS (
         INSERT INTO jobs (owner, kind, state, input, attempt, max_attempts, timeout_sec, backoff_base_ms, backoff_max_ms, created_at, finished_at)
         SELECT 'product', 'lipsync', 'succeeded', jsonb_build_object('n', g), 1, 3, 900, 2000, 60000, now() - interval '41 days', now() - interval '40 days'
         FROM generate_series(1, $1::int) g RETURNING id)
       INSERT INTO job_attempts (job_id, attempt, worker_id, lease_token, ended_at, outcome) SELECT id, 1, 'w', gen_random_uuid(), now(), 'succeeded' FROM made`,
      [PRUNED],
    );
  } finally {
    await pool.end();
  }
  const pattern = new RegExp(`retention: deleted (\\d+) jobs in \\d+ batches and \\d+ workers older than 30 days, in (\\d+) ms`, 'g');
  const until = Date.now() + 600_000; // a hang guard, not a goal
  let deleted = 0, ms = 0;
  while (deleted < PRUNED) {
    if (Date.now() > until) throw new Error(`the retention pass deleted ${deleted} of ${PRUNED} jobs in 10 minutes`);
    await new Promise((r) => setTimeout(r, 100));
    [deleted, ms] = [0, 0];
    for (const m of output().matchAll(pattern)) [deleted, ms] = [deleted + Number(m[1]), ms + Number(m[2])];
  }
  return Math.round(deleted / (ms / 1000));
}

async function main(): Promise<void> {
  const db = await startBenchDatabase();
  let orchestrator: Awaited<ReturnType<typeof startOrchestratorProcess>> | undefined;
  try {
    let t = performance.now();
    await fillBacklog(db.url);
    await vacuum(db.url, { table: 'jobs' });
    console.log(`backlog of ${TOTAL} jobs (${HEAD} at the head that no bench worker may take) in ${round((performance.now() - t) / 1000, 1)} s`);

    orchestrator = await startOrchestratorProcess(db.url, { RETENTION_DAYS: '30', PRUNE_INTERVAL_SEC: '1' });
    const client = orchestrator.worker();
    const worker = { client, id: await registerWorker(client, { gpuClass: 'RTX 4090', vramGb: 24, kinds: ['lipsync'] }) };
    const stopHeartbeats = heartbeats([worker]);
    const latencies: number[] = [];
    try {
      for (let i = 0; i < CLAIMS; i++) {
        t = performance.now();
        const claim = await worker.client.claim(worker.id, 0);
        latencies.push(performance.now() - t);
        if (!claim) throw new Error(`claim ${i} found no job in a backlog of ${TOTAL}`);
        if (claim.job.kind !== 'lipsync') throw new Error(`claim ${i} got a ${claim.job.kind} job`);
        await worker.client.status(claim.job.id, { attempt: claim.job.attempt, leaseToken: claim.job.leaseToken, status: 'completed', result: {} });
      }
    } finally {
      stopHeartbeats();
    }
    const scrapes: number[] = [];
    for (let i = 0; i < SCRAPES; i++) {
      t = performance.now();
      const res = await fetch(`${orchestrator.url}/metrics`, { headers: { Authorization: `Bearer ${OPERATOR_KEY}` } });
      await res.text();
      if (!res.ok) throw new Error(`/metrics answered ${res.status}`);
      scrapes.push(performance.now() - t);
    }
    const pruneRate = await pruneRowsPerSecond(db.url, () => orchestrator!.output());
    const p50 = round(percentile(latencies, 0.5), 2);
    const p99 = round(percentile(latencies, 0.99), 2);
    const metricsMs = round(percentile(scrapes, 0.5), 1);
    console.log(`claims over HTTP, one at a time (${CLAIMS}): p50 ${p50} ms, p99 ${p99} ms; /metrics scrape, median of ${SCRAPES}: ${metricsMs} ms`);
    console.log(`retention pass: ${PRUNED} finished jobs (and their attempts) deleted at ${pruneRate} rows/s, beside the queued backlog`);
    console.log(`backlog jobs=${TOTAL} claim_p50_ms=${p50} claim_p99_ms=${p99} metrics_ms=${metricsMs} prune_rows_per_s=${pruneRate}`);
  } finally {
    await orchestrator?.stop();
    await db.stop();
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
