/**
 * `npm run bench:dispatch`: one local PostgreSQL, one orchestrator process, and in this process:
 *  (a) enqueue->claim latency with idle long-polling workers;
 *  (b) claim+complete throughput over HTTP, 8 concurrent workers, 20,000 no-op jobs;
 *  (c) graphile-worker 0.17 on the same jobs, same database, same concurrency.
 * The last line is machine-readable; see README "Benchmarks".
 */
import type { WorkerClient } from '@avatar-fleet/contracts';
import { startOrchestratorProcess } from '@avatar-fleet/orchestrator/dist/test/helpers/orchestrator-process';
import { vacuum } from './lib/backlog';
import { startBenchDatabase } from './lib/bench-database';
import { drainOverHttp, heartbeats, insertFleetJobs, registerHttpWorkers } from './lib/fleet-workers';
import { addGraphileJobs, startGraphileWorkers } from './lib/graphile-queue';
import { percentile, round } from './lib/stats';

const JOBS = Number(process.env.BENCH_JOBS ?? 20_000);
const CONCURRENCY = 8;
const LATENCY_SAMPLES = Number(process.env.BENCH_LATENCY_SAMPLES ?? 500);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);

async function latency(worker: () => WorkerClient, enqueue: () => Promise<string>): Promise<{ p50: number; p99: number }> {
  const clients = await registerHttpWorkers(worker, 'bench', CONCURRENCY);
  // A claim can arrive before the enqueue call returns its id: whichever of the two comes second
  // records the sample.
  const claimedAt = new Map<string, number>();
  const waiting = new Map<string, (at: number) => void>();
  let stop = false;
  const stopHeartbeats = heartbeats(clients);
  const loops = clients.map(async ({ client, id }) => {
    while (!stop) {
      const claim = await client.claim(id, 2_000);
      if (!claim) continue;
      const at = performance.now();
      const resolve = waiting.get(claim.job.id);
      if (resolve) resolve(at);
      else claimedAt.set(claim.job.id, at);
      await client.status(claim.job.id, { attempt: claim.job.attempt, leaseToken: claim.job.leaseToken, status: 'completed', result: {} });
    }
  });
  await new Promise((r) => setTimeout(r, 500)); // let every worker park
  const samples: number[] = [];
  for (let i = 0; i < LATENCY_SAMPLES; i++) {
    const start = performance.now();
    const id = await enqueue();
    const early = claimedAt.get(id);
    const at = early ?? (await new Promise<number>((resolve) => waiting.set(id, resolve)));
    samples.push(at - start);
    waiting.delete(id);
    claimedAt.delete(id);
    await new Promise((r) => setTimeout(r, 5)); // the completing worker parks again
  }
  stop = true;
  await Promise.all(loops);
  stopHeartbeats();
  return { p50: percentile(samples, 0.5), p99: percentile(samples, 0.99) };
}

/** Throughput of HTTP workers; with `claimNext` each completion also claims the next job (one call per job). */
async function httpThroughput(url: string, worker: () => WorkerClient, claimNext: boolean): Promise<number> {
  await insertFleetJobs(url, JOBS, 'bench-throughput');
  await vacuum(url, { table: 'jobs' });
  const clients = await registerHttpWorkers(worker, 'bench-throughput', CONCURRENCY);
  const stopHeartbeats = heartbeats(clients);
  const start = performance.now();
  const done = await drainOverHttp(clients, claimNext);
  const seconds = (performance.now() - start) / 1000;
  stopHeartbeats();
  if (done !== JOBS) throw new Error(`HTTP workers finished ${done} of ${JOBS} jobs`);
  return JOBS / seconds;
}

async function graphileThroughput(url: string): Promise<number> {
  await addGraphileJobs(url, JOBS);
  let done = 0;
  let finish!: () => void;
  const finished = new Promise<void>((r) => (finish = r));
  const start = performance.now();
  const runner = await startGraphileWorkers(url, CONCURRENCY, () => {
    if (++done === JOBS) finish();
  });
  await finished;
  const seconds = (performance.now() - start) / 1000;
  await runner.stop();
  return JOBS / seconds;
}

async function main(): Promise<void> {
  const db = await startBenchDatabase();
  const orch = await startOrchestratorProcess(db.url, { LOG_LEVEL: 'warn', CLAIM_POLL_MS: '5000' });
  try {
    const fleet = orch.fleet();
    console.log(`(a) enqueue->claim latency: ${LATENCY_SAMPLES} jobs, one at a time, ${CONCURRENCY} idle long-polling workers`);
    const lat = await latency(() => orch.worker(), async () => (await fleet.createJob({
      kind: 'lipsync', input: { avatarId: 'a', audio: 'a.wav' }, requirements: { gpuClass: 'bench' },
    })).id);
    console.log(`    p50 ${round(lat.p50, 2)} ms, p99 ${round(lat.p99, 2)} ms`);
    // Throughput on this shared 2-core machine drifts by ±15 % from minute to minute, so the three
    // contenders take turns, ROUNDS times, and each is reported by its median.
    console.log(`(b) HTTP claim+complete and (c) graphile-worker 0.17 (default settings): ${JOBS} no-op jobs each, ` +
      `concurrency ${CONCURRENCY}, same database, ${ROUNDS} alternating rounds`);
    const runs = { separate: [] as number[], http: [] as number[], graphile: [] as number[] };
    for (let round = 1; round <= ROUNDS; round++) {
      runs.separate.push(await httpThroughput(db.url, () => orch.worker(), false));
      runs.http.push(await httpThroughput(db.url, () => orch.worker(), true));
      runs.graphile.push(await graphileThroughput(db.url));
      console.log(`    round ${round}: separate calls ${Math.round(runs.separate.at(-1)!)}, claimNext ${Math.round(runs.http.at(-1)!)}, ` +
        `graphile-worker ${Math.round(runs.graphile.at(-1)!)} jobs/s`);
    }
    const separate = percentile(runs.separate, 0.5);
    const http = percentile(runs.http, 0.5);
    const graphile = percentile(runs.graphile, 0.5);
    console.log(`    medians: (b) separate claim and status calls, 2 requests per job: ${Math.round(separate)} jobs/s`);
    console.log(`             (b) status with claimNext, 1 request per job (as buffer workers run): ${Math.round(http)} jobs/s`);
    console.log(`             (c) graphile-worker: ${Math.round(graphile)} jobs/s`);
    console.log(
      `dispatch p50_ms=${round(lat.p50, 2)} p99_ms=${round(lat.p99, 2)} http_jobs_per_s=${Math.round(http)} ` +
        `graphile_jobs_per_s=${Math.round(graphile)} ratio=${round(http / graphile, 2)}`,
    );
  } finally {
    await orch.stop();
    await db.stop();
  }
}

main().catch((error: Error) => {
  console.error(error.stack ?? error.message);
  process.exit(1);
});
