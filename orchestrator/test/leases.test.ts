import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { FleetApiError } from '@avatar-fleet/contracts';
import { eventually, lane, lipsyncJob, registerWorker } from './helpers/fixtures';
import { useOrchestrator } from './helpers/orchestrator-suite';

const LEASE_TTL_SEC = 2;
const REAPER_INTERVAL_MS = 100;

describe('leases, fencing and the reaper (short lease TTL)', () => {
  const suite = useOrchestrator({
      LEASE_TTL_SEC: String(LEASE_TTL_SEC),
      REAPER_INTERVAL_MS: String(REAPER_INTERVAL_MS),
      HEARTBEAT_INTERVAL_SEC: '1',
      OFFLINE_AFTER_INTERVALS: '2',
      MAX_LEASE_LOSSES: '2',
    });

  test('an expired lease is requeued within TTL + one reaper tick, and the stale worker can change nothing', async () => {
    const gpuClass = lane();
    const dead = await registerWorker(suite.worker, { gpuClass });
    const alive = await registerWorker(suite.worker, { gpuClass });
    const { id } = await suite.fleet.createJob(lipsyncJob({ requirements: { gpuClass } }));
    const stale = (await suite.worker.claim(dead, 0))!.job;
    const requeued = await eventually(async () => {
      const job = await suite.fleet.getJob(id);
      return job.state === 'queued' ? job : undefined;
    }, 60_000, 20);
    // By the database's clock: the attempt ended when its lease had run out, not before. How soon
    // after is the reaper's cadence (REAPER_INTERVAL_MS), which a loaded machine stretches; the chaos
    // run and the simulator measure that latency.
    const { rows: [ended] } = await suite.db.pool.query(
      `SELECT extract(epoch FROM ended_at - claimed_at) * 1000 AS ms FROM job_attempts WHERE job_id = $1 AND attempt = 1`, [id]);
    assert.ok(Number(ended.ms) >= LEASE_TTL_SEC * 1000, `ended ${ended.ms} ms after the claim, not before the lease ran out`);
    assert.equal(requeued.leaseLosses, 1);
    assert.equal(requeued.error?.code, 'lease_lost');

    const fresh = await eventually(async () => {
      await suite.worker.heartbeat(alive, { activity: 'idle', leases: [] });
      return (await suite.worker.claim(alive, 0))?.job;
    }, 60_000, 50);
    assert.equal(fresh.id, id);
    assert.equal(fresh.attempt, stale.attempt + 1);
    const staleFence = { attempt: stale.attempt, leaseToken: stale.leaseToken };
    const isStale = (e: FleetApiError) => e.status === 409 && e.code === 'stale_lease';
    await assert.rejects(suite.worker.status(id, { ...staleFence, status: 'completed', result: { from: 'stale' } }), isStale);
    await assert.rejects(suite.worker.status(id, { ...staleFence, status: 'failed', error: { code: 'x', message: 'y', retryable: true } }), isStale);
    await assert.rejects(suite.worker.progress(id, { ...staleFence, stage: 'unet', fraction: 0.9, sequence: 99 }), isStale);
    const hb = await suite.worker.heartbeat(dead, { activity: 'busy', leases: [{ jobId: id, ...staleFence }] });
    assert.deepEqual(hb.lost, [id], 'the stale worker learns its lease is gone');
    const during = await suite.fleet.getJob(id);
    assert.equal(during.state, 'running');
    assert.equal(during.workerId, alive);
    assert.equal(during.progress, null, 'the stale progress was not stored');

    await suite.worker.status(id, { attempt: fresh.attempt, leaseToken: fresh.leaseToken, status: 'completed', result: { from: 'fresh' } });
    await assert.rejects(suite.worker.status(id, { ...staleFence, status: 'completed', result: { from: 'stale' } }), isStale);
    assert.deepEqual((await suite.fleet.getJob(id)).result, { from: 'fresh' }, 'the new attempt\'s result stands');
    const history = await suite.db.pool.query(
      `SELECT attempt, worker_id, outcome, result FROM job_attempts WHERE job_id = $1 ORDER BY attempt`, [id]);
    assert.deepEqual(history.rows, [
      { attempt: 1, worker_id: dead, outcome: 'lease_lost', result: null },
      { attempt: 2, worker_id: alive, outcome: 'succeeded', result: { from: 'fresh' } },
    ], 'one history row per ended attempt');
  });

  test('heartbeats keep a lease alive well past its TTL', async () => {
    const gpuClass = lane();
    const workerId = await registerWorker(suite.worker, { gpuClass });
    const { id } = await suite.fleet.createJob(lipsyncJob({ requirements: { gpuClass } }));
    const job = (await suite.worker.claim(workerId, 0))!.job;
    const lease = { jobId: id, attempt: job.attempt, leaseToken: job.leaseToken };
    // Renewed beat after beat for three TTLs of the database's own time; beats follow each other at
    // once, so only a machine stalled for a whole TTL between two of them could let the lease lapse.
    const dbNow = async () => Number((await suite.db.pool.query('SELECT extract(epoch FROM clock_timestamp()) * 1000 AS ms')).rows[0].ms);
    const until = (await dbNow()) + LEASE_TTL_SEC * 3000;
    while ((await dbNow()) < until) {
      const hb = await suite.worker.heartbeat(workerId, { activity: 'busy', leases: [lease] });
      assert.deepEqual(hb.renewed, [id]);
    }
    const current = await suite.fleet.getJob(id);
    assert.equal(current.state, 'running');
    assert.equal(current.attempt, 1);
  });

  test('heartbeats sent at once (written as one batch) are each answered for their own worker and leases', async () => {
    const gpuClass = lane();
    const workers = await Promise.all(Array.from({ length: 24 }, () => registerWorker(suite.worker, { gpuClass })));
    await Promise.all(workers.map(() => suite.fleet.createJob(lipsyncJob({ requirements: { gpuClass } }))));
    const leases = await Promise.all(workers.map(async (w) => {
      const job = (await suite.worker.claim(w, 0))!.job;
      return { jobId: job.id, attempt: job.attempt, leaseToken: job.leaseToken };
    }));
    const [a, b, c] = workers;
    // A worker that stopped: its token still names it, but it is not registered any more.
    const gone = await registerWorker(suite.worker, { gpuClass });
    await suite.worker.deregister(gone);
    const beats = await Promise.allSettled([
      ...workers.map((w, i) => suite.worker.heartbeat(w, { activity: 'busy', leases: [leases[i]!] })),
      suite.worker.heartbeat(a!, { activity: 'busy', leases: [leases[0]!, leases[1]!] }), // b's lease is not a's
      suite.worker.heartbeat(c!, { activity: 'busy', leases: [{ ...leases[2]!, leaseToken: '00000000-0000-4000-8000-000000000000' }] }),
      suite.worker.heartbeat(gone, { activity: 'idle', leases: [] }),
    ]);
    const answer = (i: number) => (beats[i] as PromiseFulfilledResult<{ renewed: string[]; lost: string[] }>).value;
    workers.forEach((_, i) => assert.deepEqual(answer(i), { ...answer(i), renewed: [leases[i]!.jobId], lost: [] }, `worker ${i}`));
    assert.deepEqual([answer(24).renewed, answer(24).lost], [[leases[0]!.jobId], [leases[1]!.jobId]]);
    assert.deepEqual([answer(25).renewed, answer(25).lost], [[], [leases[2]!.jobId]]);
    assert.equal((beats[26] as PromiseRejectedResult).reason.code, 'worker_not_registered');
    const jobB = await suite.fleet.getJob(leases[1]!.jobId);
    assert.equal(jobB.workerId, b, 'another worker naming a lease does not take it');
  });

  test('a fleet that grows fast gets fresh planner statistics without waiting for autovacuum', async () => {
    const analyzed = async () => (await suite.db.pool.query(`SELECT analyze_count FROM pg_stat_user_tables WHERE relname = 'workers'`)).rows[0].analyze_count as string;
    const before = Number(await analyzed());
    // From any count below 64, 64 more registrations pass a power of two.
    const gpuClass = lane();
    for (let i = 0; i < 64; i++) await registerWorker(suite.worker, { gpuClass });
    await eventually(async () => (Number(await analyzed()) > before ? true : undefined), 60_000, 100);
  });

  test('a job that loses its lease MAX_LEASE_LOSSES times fails with the reason', async () => {
    const gpuClass = lane();
    const workerId = await registerWorker(suite.worker, { gpuClass });
    const { id } = await suite.fleet.createJob(lipsyncJob({ requirements: { gpuClass } }));
    for (let loss = 1; loss <= 2; loss++) {
      // Heartbeat to stay online, but never renew the job's lease: as if the job hangs the GPU.
      await eventually(async () => {
        await suite.worker.heartbeat(workerId, { activity: 'idle', leases: [] });
        return (await suite.worker.claim(workerId, 0))?.job;
      }, 60_000, 100);
      await eventually(async () => {
        const job = await suite.fleet.getJob(id);
        return job.leaseLosses === loss ? job : undefined;
      }, 60_000, 50);
    }
    const failed = await suite.fleet.getJob(id);
    assert.equal(failed.state, 'failed');
    assert.equal(failed.error?.code, 'too_many_lease_losses');
    assert.match(failed.error!.message, /2 times/);
  });

  test('execution time-out is separate from lease expiry: a renewed attempt past its deadline is ended', async () => {
    const gpuClass = lane();
    const workerId = await registerWorker(suite.worker, { gpuClass });
    const { id } = await suite.fleet.createJob(lipsyncJob({ requirements: { gpuClass }, timeoutSec: 1, maxAttempts: 1 }));
    const job = (await suite.worker.claim(workerId, 0))!.job;
    const lease = { jobId: id, attempt: job.attempt, leaseToken: job.leaseToken };
    const ended = await eventually(async () => {
      await suite.worker.heartbeat(workerId, { activity: 'busy', leases: [lease] });
      const j = await suite.fleet.getJob(id);
      return j.state === 'failed' ? j : undefined;
    }, 60_000, 200);
    assert.equal(ended.error?.code, 'timeout');
    assert.equal(ended.leaseLosses, 0, 'a time-out is not a lost lease');
    const hb = await suite.worker.heartbeat(workerId, { activity: 'busy', leases: [lease] });
    assert.deepEqual(hb.lost, [id]);
  });

  test('a silent worker goes offline after OFFLINE_AFTER_INTERVALS; a heartbeat brings it back', async () => {
    const gpuClass = lane();
    const workerId = await registerWorker(suite.worker, { gpuClass });
    const offline = await eventually(async () => {
      const w = (await suite.ops.listWorkers()).find((x) => x.id === workerId);
      return w?.state === 'offline' ? w : undefined;
    }, 60_000, 100);
    assert.equal(offline.state, 'offline');
    await assert.rejects(suite.worker.claim(workerId, 0), (e: FleetApiError) => e.code === 'worker_not_registered');
    await suite.worker.heartbeat(workerId, { activity: 'idle', leases: [] });
    assert.equal((await suite.ops.listWorkers()).find((x) => x.id === workerId)?.state, 'online');
  });

  test('a claim whose caller hung up while parked does not strand a job', async () => {
    const gpuClass = lane();
    const workerId = await registerWorker(suite.worker, { gpuClass });
    const controller = new AbortController();
    const parked = suite.worker.claim(workerId, 20_000, controller.signal).catch(() => 'aborted');
    await new Promise((r) => setTimeout(r, 200));
    controller.abort();
    assert.equal(await parked, 'aborted');
    await new Promise((r) => setTimeout(r, 100));
    const { id } = await suite.fleet.createJob(lipsyncJob({ requirements: { gpuClass } }));
    const other = await registerWorker(suite.worker, { gpuClass });
    const got = await eventually(async () => (await suite.worker.claim(other, 0))?.job, 60_000, 50);
    assert.equal(got.id, id, 'the job went to a live claimer, not to the one that left');
  });
});
