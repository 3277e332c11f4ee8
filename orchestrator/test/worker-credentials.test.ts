import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { describe, test } from 'node:test';
import { FleetApiError, WorkerClient, type ErrorCode } from '@avatar-fleet/contracts';
import { lane, lipsyncJob, workerRegistration } from './helpers/fixtures';
import { INTERNAL_KEY } from './helpers/orchestrator-process';
import { useOrchestrator } from './helpers/orchestrator-suite';

/** The status and code a call was refused with. */
async function refusal(call: Promise<unknown>): Promise<{ status: number; code: ErrorCode | 'network_error'; message: string }> {
  try {
    await call;
  } catch (error) {
    if (error instanceof FleetApiError) return { status: error.status, code: error.code, message: error.message };
    throw error;
  }
  assert.fail('the call was accepted');
}

describe('per-worker credentials: enrolment, tokens, epochs, revocation', () => {
  const suite = useOrchestrator();
  /** Each "process" is its own client: it knows only the token its own registration returned. */
  const processClient = () => new WorkerClient({ baseUrl: suite.orch.url, apiKey: INTERNAL_KEY });

  test('register returns a token and an epoch; the token acts for its worker alone, and only its hash is stored', async () => {
    const gpuClass = lane();
    const a = processClient();
    const reg = await a.register(workerRegistration({ gpuClass }));
    assert.match(reg.token, /^wkr_[A-Za-z0-9_-]{43}$/);
    assert.equal(reg.epoch, 1);
    await a.heartbeat(reg.workerId, { activity: 'idle', leases: [] });

    // The shared key may not act for a worker that has a token; another worker's token neither.
    const shared = await refusal(new WorkerClient({ baseUrl: suite.orch.url, apiKey: INTERNAL_KEY }).heartbeat(reg.workerId, { activity: 'idle', leases: [] }));
    assert.equal(shared.status, 403);
    assert.match(shared.message, /registered with its own token/);
    const b = processClient();
    const other = await b.register(workerRegistration({ gpuClass }));
    b.useToken(reg.workerId, other.token);
    const borrowed = await refusal(b.claim(reg.workerId, 0));
    assert.equal(borrowed.status, 403);
    assert.match(borrowed.message, new RegExp(`belongs to worker ${other.workerId}`));

    // Status and progress need the holder's token too, even with the right lease in hand.
    const job = await suite.fleet.createJob(lipsyncJob({ requirements: { gpuClass } }));
    const lease = (await a.claim(reg.workerId, 0))!.job;
    assert.equal(lease.id, job.id);
    const fence = { attempt: lease.attempt, leaseToken: lease.leaseToken };
    const elsewhere = new WorkerClient({ baseUrl: suite.orch.url, apiKey: INTERNAL_KEY });
    elsewhere.useToken(other.workerId, other.token);
    const report = await refusal(elsewhere.status(lease.id, { ...fence, status: 'completed', result: { stolen: true }, claimNext: { workerId: other.workerId } }));
    assert.equal(report.status, 403);
    assert.match(report.message, new RegExp(`held by worker ${reg.workerId}`));
    const progress = await refusal(elsewhere.progress(lease.id, { ...fence, stage: 'x', fraction: 0.5, sequence: 1 }));
    assert.equal(progress.status, 403);
    const untouched = await suite.fleet.getJob(job.id);
    assert.deepEqual([untouched.state, untouched.result, untouched.progress], ['running', null, null]);
    await a.status(lease.id, { ...fence, status: 'completed', result: { mine: true } });
    assert.deepEqual((await suite.fleet.getJob(job.id)).result, { mine: true });

    const { rows } = await suite.db.pool.query(`SELECT token_hash, row_to_json(w)::text AS everything FROM workers w WHERE id = $1`, [reg.workerId]);
    assert.deepEqual(rows[0].token_hash, createHash('sha256').update(reg.token).digest());
    assert.ok(!rows[0].everything.includes(reg.token), 'the token itself is nowhere in the row');
    assert.ok(!suite.orch.output().includes(reg.token), 'nor in the log');
  });

  test('a stale process (older epoch of the same fixed id) can neither deregister nor re-register, and the live one keeps its job', async () => {
    const gpuClass = lane();
    const workerId = `fixed-${gpuClass}`;
    const stale = processClient();
    const first = await stale.register(workerRegistration({ gpuClass, workerId }));
    const live = processClient();
    const second = await live.register(workerRegistration({ gpuClass, workerId }));
    assert.equal(second.epoch, first.epoch + 1);
    const job = await suite.fleet.createJob(lipsyncJob({ requirements: { gpuClass } }));
    const lease = (await live.claim(workerId, 0))!.job;
    assert.equal(lease.id, job.id);

    const heartbeat = await refusal(stale.heartbeat(workerId, { activity: 'idle', leases: [] }));
    assert.deepEqual([heartbeat.status, heartbeat.code], [409, 'stale_registration']);
    const deregister = await refusal(stale.deregister(workerId, { reason: 'stale shutdown', epoch: first.epoch }));
    assert.deepEqual([deregister.status, deregister.code], [409, 'stale_registration']);
    assert.match(deregister.message, /epoch 2/);
    const again = await refusal(stale.register(workerRegistration({ gpuClass, workerId, epoch: first.epoch })));
    assert.deepEqual([again.status, again.code], [409, 'stale_registration']);
    // The shared key (a legacy path) cannot stand in for either of them.
    const shared = await refusal(new WorkerClient({ baseUrl: suite.orch.url, apiKey: INTERNAL_KEY }).deregister(workerId, {}));
    assert.equal(shared.status, 403);

    const now = await suite.fleet.getJob(job.id);
    assert.deepEqual([now.state, now.workerId, now.attempt], ['running', workerId, lease.attempt]);
    const beat = await live.heartbeat(workerId, { activity: 'busy', leases: [{ jobId: lease.id, attempt: lease.attempt, leaseToken: lease.leaseToken }] });
    assert.deepEqual(beat.renewed, [job.id]);
    // The live process, re-registering with its own epoch, is accepted.
    assert.equal((await live.register(workerRegistration({ gpuClass, workerId, epoch: second.epoch }))).epoch, 3);
  });

  test('an operator revokes a worker: its token stops working at once, its job is requeued uncharged, its id cannot register until reinstated', async () => {
    const gpuClass = lane();
    const client = processClient();
    const reg = await client.register(workerRegistration({ gpuClass, workerId: `revoked-${gpuClass}` }));
    const job = await suite.fleet.createJob(lipsyncJob({ requirements: { gpuClass } }));
    await client.claim(reg.workerId, 0);

    const view = await suite.ops.revokeWorker(reg.workerId);
    assert.equal(view.state, 'stopped');
    assert.ok(view.revokedAt);
    const requeued = await suite.fleet.getJob(job.id);
    assert.deepEqual([requeued.state, requeued.leaseLosses, requeued.attemptsUsed], ['queued', 0, 0]);
    const beat = await refusal(client.heartbeat(reg.workerId, { activity: 'idle', leases: [] }));
    assert.deepEqual([beat.status, beat.code], [403, 'worker_revoked']);
    const register = await refusal(client.register(workerRegistration({ gpuClass, workerId: reg.workerId })));
    assert.deepEqual([register.status, register.code], [403, 'worker_revoked']);
    const legacy = await refusal(new WorkerClient({ baseUrl: suite.orch.url, apiKey: INTERNAL_KEY }).heartbeat(reg.workerId, {}));
    assert.deepEqual([legacy.status, legacy.code], [403, 'worker_revoked']);

    await suite.ops.reinstateWorker(reg.workerId);
    const back = await processClient().register(workerRegistration({ gpuClass, workerId: reg.workerId }));
    assert.equal(back.epoch, reg.epoch + 1);
    const old = await refusal(client.heartbeat(reg.workerId, { activity: 'idle', leases: [] }));
    assert.equal(old.status, 401, 'the revoked token is void for good');
  });
});

describe('LEGACY_WORKERS=refuse: the enrolment key only registers', () => {
  const suite = useOrchestrator({ LEGACY_WORKERS: 'refuse' });

  test('a host on the shared key alone is refused, told to register; a registered worker works', async () => {
    const shared = new WorkerClient({ baseUrl: suite.orch.url, apiKey: INTERNAL_KEY });
    const beat = await refusal(shared.heartbeat('buffer-local-1', { gpuClassName: 'RTX 3090 (24 GB)' }));
    assert.equal(beat.status, 403);
    assert.match(beat.message, /POST \/internal\/buffer\/workers\/register/);
    const reg = await shared.register(workerRegistration({ gpuClass: lane() }));
    assert.equal((await shared.heartbeat(reg.workerId, { activity: 'idle', leases: [] })).lost.length, 0);
    const { rows } = await suite.db.pool.query(`SELECT count(*)::int AS n FROM workers WHERE id = 'buffer-local-1'`);
    assert.equal(rows[0].n, 0, 'the refused host was not registered');
  });
});
