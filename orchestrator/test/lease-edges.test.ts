import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { ClaimedJob, FleetApiError } from '@avatar-fleet/contracts';
import { LeaseRepository } from '../src/leases/lease.repository';
import { eventually, lane, lipsyncJob, registerWorker, workerRegistration } from './helpers/fixtures';
import { OTHER_API_KEY, startOrchestratorProcess, type OrchestratorProcess } from './helpers/orchestrator-process';
import { useOrchestrator } from './helpers/orchestrator-suite';
import { createTestDatabase } from './helpers/test-database';

/** Backends of the test database that wait for a row or table lock. */
async function lockWaiters(pool: { query(sql: string): Promise<{ rows: { n: number }[] }> }): Promise<number> {
  const { rows } = await pool.query(
    `SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'`);
  return rows[0]!.n;
}

describe('lease edge cases', () => {
  const suite = useOrchestrator();

  test('a retried claimNext of a two-slot worker gets back its own slot\'s next job, not the other slot\'s', async () => {
    const gpuClass = lane();
    const registration = workerRegistration({ gpuClass, slots: 2 });
    const workerId = await registerWorker(suite.worker, registration);
    for (let i = 0; i < 2; i++) await suite.fleet.createJob(lipsyncJob({ requirements: { gpuClass } }));
    const running = [(await suite.worker.claim(workerId, 0))!.job, (await suite.worker.claim(workerId, 0))!.job];
    for (let i = 0; i < 2; i++) await suite.fleet.createJob(lipsyncJob({ requirements: { gpuClass } }));
    // Both slots complete in one statement, as the orchestrator batches concurrent calls: both next
    // jobs start at the very instant both completed jobs finish.
    const caps = { kinds: [...registration.kinds].sort(), gpuClass, vramGb: registration.vramGb! };
    const completions = running.map((job) => ({ jobId: job.id, attempt: job.attempt, leaseToken: job.leaseToken, result: { slot: job.id }, workerId }));
    const rows = await new LeaseRepository().completeAndClaimBatch(suite.db.pool, caps, completions, 25);
    const paired = rows.map((row) => (row.claim?.kind === 'claimed' ? row.claim.job.id : null));
    assert.equal(new Set(paired).size, 2, `each slot leased its own next job: ${JSON.stringify(paired)}`);
    // Their answers were lost: each slot retries its completion and must get its own next job back.
    for (const [i, job] of running.entries()) {
      const retry = await suite.worker.status(job.id, {
        attempt: job.attempt, leaseToken: job.leaseToken, status: 'completed', result: { slot: job.id }, claimNext: { workerId },
      });
      assert.equal(retry.next?.id, paired[i], `slot ${i} gets the job its completion leased`);
    }
  });

  test('every way a job is leased hands the worker its owner\'s storage prefix: claim, claimNext, a retried claimNext', async () => {
    const gpuClass = lane();
    const workerId = await registerWorker(suite.worker, { gpuClass });
    const other = suite.orch.fleet(OTHER_API_KEY);
    const product = await suite.fleet.createJob(lipsyncJob({ requirements: { gpuClass }, priority: 2 }));
    const others = await other.createJob(lipsyncJob({ requirements: { gpuClass }, priority: 1 }));
    const first = (await suite.worker.claim(workerId, 0))!.job;
    assert.deepEqual([first.id, first.storagePrefix], [product.id, 'tenants/product/']);
    const fence = { attempt: first.attempt, leaseToken: first.leaseToken, status: 'completed' as const, result: { n: 1 }, claimNext: { workerId } };
    const next = (await suite.worker.status(first.id, fence)).next!;
    assert.deepEqual([next.id, next.storagePrefix], [others.id, 'tenants/other/'], 'the next job is another owner\'s, with that owner\'s prefix');
    // The first answer was lost: the retry gets the same next job back (leasedWithCompletion), prefix included.
    assert.deepEqual((await suite.worker.status(first.id, fence)).next, next);
  });

  test('a completion of a cancelled job clears its lease, as a cancelled failure does', async () => {
    const gpuClass = lane();
    const workerId = await registerWorker(suite.worker, { gpuClass });
    const jobs: ClaimedJob[] = [];
    for (let i = 0; i < 2; i++) {
      await suite.fleet.createJob(lipsyncJob({ requirements: { gpuClass } }));
      const job = (await suite.worker.claim(workerId, 0))!.job;
      await suite.fleet.cancelJob(job.id);
      jobs.push(job);
    }
    const [completed, failed] = jobs as [ClaimedJob, ClaimedJob];
    await assert.rejects(
      suite.worker.status(completed.id, { attempt: completed.attempt, leaseToken: completed.leaseToken, status: 'completed', result: { x: 1 } }),
      (e: FleetApiError) => e.status === 409 && e.code === 'job_cancelled',
    );
    const ack = await suite.worker.status(failed.id, {
      attempt: failed.attempt, leaseToken: failed.leaseToken, status: 'failed', error: { code: 'cancelled', message: 'aborted', retryable: false },
    });
    assert.equal(ack.state, 'cancelled');
    const { rows } = await suite.db.pool.query(
      `SELECT id, state, lease_token, started_at, worker_id, lease_expires_at, deadline_at, prior_lease_token FROM jobs WHERE id = ANY ($1)`,
      [[completed.id, failed.id]]);
    for (const row of rows) {
      assert.deepEqual(
        { state: row.state, lease_token: row.lease_token, started_at: row.started_at, worker_id: row.worker_id,
          lease_expires_at: row.lease_expires_at, deadline_at: row.deadline_at, prior_lease_token: row.prior_lease_token },
        { state: 'cancelled', lease_token: null, started_at: null, worker_id: null, lease_expires_at: null, deadline_at: null, prior_lease_token: null },
        `job ${row.id === completed.id ? 'cancelled on completion' : 'cancelled on failure'}`,
      );
    }
    // The attempt's history still names its lease and start.
    const { rows: [attempt] } = await suite.db.pool.query(
      `SELECT worker_id, lease_token, claimed_at IS NOT NULL AS started, outcome FROM job_attempts WHERE job_id = $1`, [completed.id]);
    assert.deepEqual(attempt, { worker_id: workerId, lease_token: completed.leaseToken, started: true, outcome: 'cancelled' });
  });

  test('a claim racing a deregistration leases the stopping worker nothing', async () => {
    const gpuClass = lane();
    const workerId = await registerWorker(suite.worker, { gpuClass, slots: 2 });
    const { id: heldId } = await suite.fleet.createJob(lipsyncJob({ requirements: { gpuClass } }));
    assert.equal((await suite.worker.claim(workerId, 0))?.job.id, heldId);
    const { id: queuedId } = await suite.fleet.createJob(lipsyncJob({ requirements: { gpuClass } }));
    // Holding the running job's row pauses the deregistration at its release, inside its transaction.
    const blocker = await suite.db.pool.connect();
    let claim: Promise<unknown> | undefined;
    let deregister: Promise<unknown> | undefined;
    try {
      await blocker.query('BEGIN');
      await blocker.query('SELECT 1 FROM jobs WHERE id = $1 FOR UPDATE', [heldId]);
      deregister = suite.worker.deregister(workerId, { reason: 'race' });
      await eventually(async () => ((await lockWaiters(suite.db.pool)) >= 1 ? true : undefined));
      // The claim either finishes at once or waits for the deregistration; either is seen here.
      let settled = false;
      claim = suite.worker.claim(workerId, 0).then(
        (answer) => answer?.job.id ?? null,
        (error: FleetApiError) => error.code,
      ).finally(() => (settled = true));
      await eventually(async () => (settled || (await lockWaiters(suite.db.pool)) >= 2 ? true : undefined));
    } finally {
      await blocker.query('ROLLBACK');
      blocker.release();
    }
    assert.deepEqual(await deregister, { released: [heldId] });
    assert.notEqual(await claim, queuedId, 'the stopping worker was not leased the queued job');
    const { rows } = await suite.db.pool.query(`SELECT id, state FROM jobs WHERE id = ANY ($1) ORDER BY id`, [[heldId, queuedId]]);
    assert.deepEqual(rows.map((r) => r.state), ['queued', 'queued'], 'both jobs are back in the queue, none left with a stopped worker');
  });
});

describe('leases on the database\'s clock (the orchestrator\'s clock runs an hour ahead)', () => {
  const LEASE_TTL_SEC = 25;
  let db: Awaited<ReturnType<typeof createTestDatabase>>;
  let orch: OrchestratorProcess;
  before(async () => {
    db = await createTestDatabase();
    orch = await startOrchestratorProcess(db.url, { LEASE_TTL_SEC: String(LEASE_TTL_SEC) }, [
      '--require', path.resolve(__dirname, 'helpers/clock-an-hour-ahead.js'),
    ]);
  });
  after(async () => {
    await orch?.stop();
    await db?.drop();
  });

  test('a heartbeat that renews no lease answers an expiry one TTL from the database\'s now', async () => {
    const worker = orch.worker();
    const workerId = await registerWorker(worker, { gpuClass: lane() });
    const before = Number((await db.pool.query('SELECT extract(epoch FROM now()) * 1000 AS ms')).rows[0].ms);
    const hb = await worker.heartbeat(workerId, { activity: 'idle', leases: [] });
    const after = Number((await db.pool.query('SELECT extract(epoch FROM now()) * 1000 AS ms')).rows[0].ms);
    const expires = Date.parse(hb.leaseExpiresAt);
    assert.ok(
      expires >= Math.floor(before) + LEASE_TTL_SEC * 1000 && expires <= after + LEASE_TTL_SEC * 1000,
      `expiry ${hb.leaseExpiresAt} is ${LEASE_TTL_SEC} s after the database's now, between ${new Date(before).toISOString()} and ${new Date(after).toISOString()}`,
    );
  });
});
