/**
 * The fleet side of the throughput benchmarks: a backlog of no-op jobs put straight into the
 * orchestrator's database, and HTTP workers (the real `WorkerClient`) that claim and complete them.
 */
import { Pool } from 'pg';
import type { ClaimedJob, WorkerClient } from '@avatar-fleet/contracts';
import { registerWorker } from '@avatar-fleet/orchestrator/dist/test/helpers/fixtures';
import { inBatches } from './backlog';

export interface HttpWorker {
  client: WorkerClient;
  id: string;
}

export async function registerHttpWorkers(worker: () => WorkerClient, gpuClass: string, count: number): Promise<HttpWorker[]> {
  return Promise.all(Array.from({ length: count }, async () => {
    const client = worker();
    return { client, id: await registerWorker(client, { gpuClass }) };
  }));
}

/** Heartbeats every 10 s, as real workers do; without them a run longer than 30 s would mark the workers offline. */
export function heartbeats(workers: HttpWorker[]): () => void {
  const timer = setInterval(() => {
    for (const { client, id } of workers) void client.heartbeat(id, { activity: 'busy', leases: [] }).catch(() => undefined);
  }, 10_000);
  return () => clearInterval(timer);
}

/**
 * Queues `total` no-op `lipsync` jobs for `gpuClass`, `batch` per INSERT. Straight into the table:
 * the product API creates one job per request, and the benchmarks measure the worker side.
 * Each job's input carries `n` and `enqueuedAt` (see NoopPayload).
 */
export async function insertFleetJobs(url: string, total: number, gpuClass: string, batch = total): Promise<void> {
  const pool = new Pool({ connectionString: url, max: 2 });
  try {
    await inBatches(total, batch, (first, count, enqueuedAt) => pool.query(
      `INSERT INTO jobs (owner, kind, state, input, gpu_class, min_vram_gb, max_attempts, timeout_sec, backoff_base_ms, backoff_max_ms)
       SELECT 'product', 'lipsync', 'queued', jsonb_build_object('avatarId', 'a', 'audio', 'a.wav', 'n', g, 'enqueuedAt', $3::float8),
              $4, 6, 3, 900, 2000, 60000
       FROM generate_series($1::int + 1, $1::int + $2::int) g`,
      [first, count, enqueuedAt, gpuClass],
    ));
    // The workers of earlier rounds have exited; each round registers its own.
    await pool.query(`DELETE FROM workers`);
  } finally {
    await pool.end();
  }
}

/**
 * Each worker claims and completes jobs until none is left. With `claimNext` a completion also
 * leases the worker's next job (one request per job, as buffer workers run); without it, every job
 * costs a claim and a status request. `onStart` sees each job as its handler would begin.
 * Resolves to the number of jobs completed.
 */
export async function drainOverHttp(
  workers: HttpWorker[],
  claimNext: boolean,
  onStart: (job: ClaimedJob) => void = () => undefined,
): Promise<number> {
  let done = 0;
  await Promise.all(workers.map(async ({ client, id }) => {
    let job = (await client.claim(id, 0))?.job ?? null;
    while (job) {
      onStart(job);
      const fence = { attempt: job.attempt, leaseToken: job.leaseToken };
      if (claimNext) {
        const reply = await client.status(job.id, { ...fence, status: 'completed', result: {}, claimNext: { workerId: id } });
        job = reply.next ?? null;
      } else {
        await client.status(job.id, { ...fence, status: 'completed', result: {} });
        job = (await client.claim(id, 0))?.job ?? null;
      }
      done++;
    }
  }));
  return done;
}
