import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { ClaimedJob, WorkerClient } from '@avatar-fleet/contracts';
import { lipsyncJob, registerWorker } from './helpers/fixtures';
import { startOrchestratorProcess, type OrchestratorProcess } from './helpers/orchestrator-process';
import { createTestDatabase } from './helpers/test-database';

const JOBS = 400;
const WORKERS_PER_REPLICA = 25;

describe('two orchestrator processes on one database', () => {
  let db: Awaited<ReturnType<typeof createTestDatabase>>;
  let replicas: OrchestratorProcess[];

  before(async () => {
    db = await createTestDatabase();
    // The backstop poll far out (22.5 s at the earliest): a parked call answered sooner was woken by NOTIFY.
    replicas = await Promise.all([startOrchestratorProcess(db.url, { CLAIM_POLL_MS: '30000' }), startOrchestratorProcess(db.url, { CLAIM_POLL_MS: '30000' })]);
  });
  after(async () => {
    await Promise.all(replicas.map((r) => r.stop()));
    await db.drop();
  });

  test(`${WORKERS_PER_REPLICA * 2} workers claiming concurrently through both replicas get each of ${JOBS} jobs exactly once`, async () => {
    const clients: { client: WorkerClient; id: string }[] = [];
    for (const replica of replicas) {
      for (let i = 0; i < WORKERS_PER_REPLICA; i++) {
        const client = replica.worker();
        clients.push({ client, id: await registerWorker(client, { gpuClass: 'race' }) });
      }
    }
    // Workers park first (long-poll), then the jobs arrive: the first wave of claims is simultaneous.
    const claims = new Map<string, { worker: string; job: ClaimedJob }[]>();
    let enqueued = 0;
    const runWorker = async ({ client, id }: { client: WorkerClient; id: string }) => {
      for (;;) {
        const claim = await client.claim(id, enqueued < JOBS ? 2_000 : 0);
        if (!claim) {
          if (enqueued >= JOBS) return;
          continue;
        }
        const list = claims.get(claim.job.id) ?? [];
        list.push({ worker: id, job: claim.job });
        claims.set(claim.job.id, list);
        await client.status(claim.job.id, {
          attempt: claim.job.attempt, leaseToken: claim.job.leaseToken, status: 'completed', result: { by: id },
        });
      }
    };
    const running = clients.map(runWorker);
    const fleet = replicas[0]!.fleet();
    const ids: string[] = [];
    let reserved = 0;
    await Promise.all(
      Array.from({ length: 8 }, async () => {
        while (reserved < JOBS) {
          reserved++;
          ids.push((await fleet.createJob(lipsyncJob({ requirements: { gpuClass: 'race' } }))).id);
          enqueued++;
        }
      }),
    );
    await Promise.all(running);

    assert.equal(claims.size, JOBS, 'every job was claimed');
    for (const id of ids) {
      const got = claims.get(id);
      assert.equal(got?.length, 1, `job ${id} was handed out ${got?.length ?? 0} times`);
      assert.equal(got[0]!.job.attempt, 1);
    }
    const { rows } = await db.pool.query(
      `SELECT count(*)::int AS jobs, count(*) FILTER (WHERE state = 'succeeded')::int AS succeeded,
              (SELECT count(*)::int FROM job_attempts) AS attempts FROM jobs`,
    );
    assert.deepEqual(rows[0], { jobs: JOBS, succeeded: JOBS, attempts: JOBS });
    const spread = new Set([...claims.values()].map((c) => c[0]!.worker));
    assert.ok(spread.size > WORKERS_PER_REPLICA, `work was spread over both replicas' workers (${spread.size} workers)`);
  });

  test('NOTIFY crosses replicas: a claim parked on one wakes for a job enqueued on the other, and so does a job wait', async () => {
    const [a, b] = replicas as [OrchestratorProcess, OrchestratorProcess];
    const workerOnB = b.worker();
    const workerId = await registerWorker(workerOnB, { gpuClass: 'cross' });
    const parked = workerOnB.claim(workerId, 20_000);
    await new Promise((r) => setTimeout(r, 200));
    const enqueuedAt = Date.now();
    const job = await a.fleet().createJob(lipsyncJob({ requirements: { gpuClass: 'cross' } }));
    const claimed = (await parked)!.job;
    const claimMs = Date.now() - enqueuedAt;
    assert.equal(claimed.id, job.id);
    // Its own wait is 20 s and no poll comes before 22.5 s: answered well before, it was woken by the
    // NOTIFY from A (within milliseconds idle; a loaded machine gets all the room it needs).
    assert.ok(claimMs < 15_000, `claim on replica B woke ${claimMs} ms after the enqueue on A`);

    const waiting = a.fleet().getJob(job.id, { waitMs: 60_000 });
    await new Promise((r) => setTimeout(r, 200));
    const completedAt = Date.now();
    await workerOnB.status(job.id, { attempt: claimed.attempt, leaseToken: claimed.leaseToken, status: 'completed', result: { via: 'B' } });
    const seen = await waiting;
    assert.equal(seen.state, 'succeeded');
    assert.deepEqual(seen.result, { via: 'B' });
    assert.ok(Date.now() - completedAt < 30_000, 'the wait on replica A was woken by the completion on B, long before its 60 s ran out');
  });
});
