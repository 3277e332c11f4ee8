import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, test } from 'node:test';
import type { FleetApiError } from '@avatar-fleet/contracts';
import { eventually, lane, lipsyncJob, registerWorker } from './helpers/fixtures';
import { useOrchestrator } from './helpers/orchestrator-suite';

// Every test uses its own GPU class (lane()) for its jobs and workers, so tests sharing a database never take each other's jobs.
describe('job lifecycle over HTTP (real orchestrator process, real PostgreSQL)', () => {
  const suite = useOrchestrator({ CLAIM_POLL_MS: '30000' });

  test('register, heartbeat, claim, progress, complete: the result is published', async () => {
    const gpuClass = lane();
    const reg = await suite.worker.register({
      provider: 'vast', mode: 'buffer', gpuClass, vramGb: 24, kinds: ['lipsync'], version: '1.2.3', hourlyCost: 0.25,
    });
    assert.match(reg.workerId, /^vast-[0-9a-f]{12}$/);
    assert.equal(reg.heartbeatIntervalSec, 10);
    assert.ok(reg.leaseTtlSec > reg.heartbeatIntervalSec);

    const created = await suite.fleet.createJob(lipsyncJob({ requirements: { gpuClass } }));
    assert.equal(created.state, 'queued');
    assert.equal(created.requirements.minVramGb, 6, 'the kind policy sets the VRAM floor');

    const claim = await suite.worker.claim(reg.workerId, 0);
    assert.ok(claim);
    const job = claim.job;
    assert.equal(job.id, created.id);
    assert.equal(job.attempt, 1);
    assert.deepEqual(job.input, created.input);

    const hb = await suite.worker.heartbeat(reg.workerId, {
      activity: 'busy', leases: [{ jobId: job.id, attempt: job.attempt, leaseToken: job.leaseToken }], telemetry: { gpuUtilPct: 87, gpuTempC: 71 },
    });
    assert.deepEqual(hb.renewed, [job.id]);
    assert.deepEqual(hb.lost, []);
    assert.ok(new Date(hb.leaseExpiresAt) >= new Date(job.leaseExpiresAt));

    await suite.worker.status(job.id, { attempt: job.attempt, leaseToken: job.leaseToken, status: 'running' });
    const p1 = await suite.worker.progress(job.id, { attempt: 1, leaseToken: job.leaseToken, stage: 'unet', fraction: 0.5, sequence: 2 });
    assert.equal(p1.cancelRequested, false);
    // An older sequence arriving late does not move progress backwards.
    await suite.worker.progress(job.id, { attempt: 1, leaseToken: job.leaseToken, stage: 'decode', fraction: 0.1, sequence: 1 });
    const mid = await suite.fleet.getJob(job.id);
    assert.equal(mid.state, 'running');
    assert.deepEqual([mid.progress?.stage, mid.progress?.fraction, mid.progress?.sequence], ['unet', 0.5, 2]);
    assert.equal(mid.result, null, 'nothing is published before completion');

    const result = { videoKey: `jobs/${job.id}/attempt-1/out.mp4`, durationSec: 3.2, frameCount: 80 };
    const done = await suite.worker.status(job.id, { attempt: 1, leaseToken: job.leaseToken, status: 'completed', result });
    assert.equal(done.state, 'succeeded');
    const final = await suite.fleet.getJob(job.id);
    assert.equal(final.state, 'succeeded');
    assert.deepEqual(final.result, result);
    assert.ok(final.finishedAt);

    const workers = await suite.ops.listWorkers();
    const me = workers.find((w) => w.id === reg.workerId);
    assert.equal(me?.activity, 'busy');
    assert.equal(me?.telemetry?.gpuUtilPct, 87);
  });

  test('a repeated identical completion is answered 200; a different one is 409 and changes nothing', async () => {
    const gpuClass = lane();
    const workerId = await registerWorker(suite.worker, { gpuClass });
    const { id } = await suite.fleet.createJob(lipsyncJob({ requirements: { gpuClass } }));
    const { job } = (await suite.worker.claim(workerId, 0))!;
    const fence = { attempt: job.attempt, leaseToken: job.leaseToken };
    const result = { videoKey: 'a.mp4', durationSec: 1, frameCount: 25 };
    await suite.worker.status(id, { ...fence, status: 'completed', result });
    const again = await suite.worker.status(id, { ...fence, status: 'completed', result: { frameCount: 25, durationSec: 1, videoKey: 'a.mp4' } });
    assert.equal(again.state, 'succeeded');
    await assert.rejects(
      suite.worker.status(id, { ...fence, status: 'completed', result: { videoKey: 'b.mp4', durationSec: 1, frameCount: 25 } }),
      (e: FleetApiError) => e.status === 409 && e.code === 'completion_mismatch',
    );
    assert.deepEqual((await suite.fleet.getJob(id)).result, result);
  });

  test('idempotent enqueue: same key and body -> the same job; same key, other body -> 409', async () => {
    const key = `order-${randomUUID()}`;
    const requirements = { gpuClass: lane() };
    const first = await suite.fleet.createJob(lipsyncJob({ idempotencyKey: key, requirements }));
    const second = await suite.fleet.createJob(lipsyncJob({ idempotencyKey: key, requirements: { ...requirements } }));
    assert.equal(second.id, first.id);
    await assert.rejects(
      suite.fleet.createJob(lipsyncJob({ idempotencyKey: key, requirements, priority: 5 })),
      (e: FleetApiError) => e.status === 409 && e.code === 'idempotency_conflict',
    );
    // Keys are per API key owner: another owner may use the same key for its own job.
    const other = await suite.orch.fleet('test-other-key-0123456789ab').createJob(lipsyncJob({ idempotencyKey: key, requirements: { gpuClass: lane() } }));
    assert.notEqual(other.id, first.id);
    const page = await suite.fleet.listJobs({ limit: 200 });
    assert.equal(page.items.filter((j) => j.idempotencyKey === key).length, 1);
  });

  test('cancel: a queued job at once; a running one through the heartbeat and progress replies', async () => {
    const gpuClass = lane();
    const queued = await suite.fleet.createJob(lipsyncJob({ requirements: { gpuClass } }));
    const cancelled = await suite.fleet.cancelJob(queued.id);
    assert.equal(cancelled.state, 'cancelled');
    assert.equal((await suite.fleet.cancelJob(queued.id)).state, 'cancelled', 'cancelling twice is harmless');

    const workerId = await registerWorker(suite.worker, { gpuClass });
    assert.equal(await suite.worker.claim(workerId, 0), null, 'a cancelled job is never claimed');
    const running = await suite.fleet.createJob(lipsyncJob({ requirements: { gpuClass } }));
    const { job } = (await suite.worker.claim(workerId, 0))!;
    assert.equal(job.id, running.id);
    const flagged = await suite.fleet.cancelJob(running.id);
    assert.equal(flagged.state, 'running');
    assert.equal(flagged.cancelRequested, true);

    const lease = { jobId: job.id, attempt: job.attempt, leaseToken: job.leaseToken };
    const hb = await suite.worker.heartbeat(workerId, { activity: 'busy', leases: [lease] });
    assert.deepEqual(hb.cancelled, [job.id]);
    const pr = await suite.worker.progress(job.id, { attempt: job.attempt, leaseToken: job.leaseToken, stage: 'unet', fraction: 0.3, sequence: 1 });
    assert.equal(pr.cancelRequested, true);
    const ack = await suite.worker.status(job.id, {
      attempt: job.attempt, leaseToken: job.leaseToken, status: 'failed', error: { code: 'cancelled', message: 'aborted', retryable: false },
    });
    assert.equal(ack.state, 'cancelled');
    const final = await suite.fleet.getJob(job.id);
    assert.equal(final.state, 'cancelled');
    assert.equal(final.error?.code, 'cancelled');
    await assert.rejects(suite.fleet.cancelJob(randomUUID()), (e: FleetApiError) => e.status === 404);
  });

  test('a failed job is retried with backoff, fails for good when attempts run out, and can be retried by the product', async () => {
    const gpuClass = lane();
    const workerId = await registerWorker(suite.worker, { gpuClass });
    const { id } = await suite.fleet.createJob(lipsyncJob({ requirements: { gpuClass }, maxAttempts: 2 }));
    const first = (await suite.worker.claim(workerId, 0))!.job;
    const r1 = await suite.worker.status(id, {
      attempt: first.attempt, leaseToken: first.leaseToken, status: 'failed', error: { code: 'decode_error', message: 'boom', retryable: true },
    });
    assert.equal(r1.state, 'queued');
    const requeued = await suite.fleet.getJob(id);
    const backoffMs = Date.parse(requeued.runAfter) - Date.parse(requeued.updatedAt);
    assert.ok(backoffMs >= 900 && backoffMs <= 2100, `first backoff is base 2 s with jitter in [50 %, 100 %], got ${backoffMs} ms`);
    assert.equal(await suite.worker.claim(workerId, 0), null, 'not claimable during backoff');

    const second = await eventually(async () => (await suite.worker.claim(workerId, 0))?.job, 60_000, 100);
    assert.equal(second.attempt, 2);
    const r2 = await suite.worker.status(id, {
      attempt: 2, leaseToken: second.leaseToken, status: 'failed', error: { code: 'decode_error', message: 'boom again', retryable: true },
    });
    assert.equal(r2.state, 'failed');
    const failed = await suite.fleet.getJob(id);
    assert.equal(failed.error?.code, 'attempts_exhausted');
    assert.match(failed.error!.message, /2 of 2 attempts.*decode_error: boom again/);

    const retried = await suite.fleet.retryJob(id);
    assert.equal(retried.state, 'queued');
    assert.equal(retried.attemptsUsed, 0);
    const third = (await suite.worker.claim(workerId, 0))!.job;
    assert.equal(third.attempt, 3, 'attempt numbers keep rising, so old fencing tokens stay stale');
    await assert.rejects(suite.fleet.retryJob(id), (e: FleetApiError) => e.status === 409 && e.code === 'invalid_state');
    // A non-retryable failure ends the job on the first attempt.
    const r3 = await suite.worker.status(id, {
      attempt: 3, leaseToken: third.leaseToken, status: 'failed', error: { code: 'no_face', message: 'no face found', retryable: false },
    });
    assert.equal(r3.state, 'failed');
    assert.equal((await suite.fleet.getJob(id)).error?.code, 'no_face');
  });

  test('claimNext: a final status claims the worker\'s next job in the same call', async () => {
    const gpuClass = lane();
    const workerId = await registerWorker(suite.worker, { gpuClass });
    const a = await suite.fleet.createJob(lipsyncJob({ requirements: { gpuClass } }));
    const b = await suite.fleet.createJob(lipsyncJob({ requirements: { gpuClass } }));
    const first = (await suite.worker.claim(workerId, 0))!.job;
    assert.equal(first.id, a.id);
    const reply = await suite.worker.status(first.id, {
      attempt: first.attempt, leaseToken: first.leaseToken, status: 'completed', result: { n: 1 }, claimNext: { workerId },
    });
    assert.equal(reply.state, 'succeeded');
    assert.equal(reply.next?.id, b.id);
    assert.equal((await suite.fleet.getJob(b.id)).workerId, workerId);
    // The same request again (its answer lost on the way): the same next job and lease, not another job.
    const spare = await suite.fleet.createJob(lipsyncJob({ requirements: { gpuClass } }));
    const retried = await suite.worker.status(first.id, {
      attempt: first.attempt, leaseToken: first.leaseToken, status: 'completed', result: { n: 1 }, claimNext: { workerId },
    });
    assert.equal(retried.next?.id, b.id);
    assert.equal(retried.next?.leaseToken, reply.next?.leaseToken);
    assert.equal((await suite.fleet.cancelJob(spare.id)).state, 'cancelled', 'the spare job was left queued');
    // Nothing left: with a wait, the call parks until a job arrives.
    const second = reply.next!;
    const parked = suite.worker.status(second.id, {
      attempt: second.attempt, leaseToken: second.leaseToken, status: 'failed',
      error: { code: 'bad_audio', message: 'no samples', retryable: false }, claimNext: { workerId, waitMs: 10_000 },
    });
    await new Promise((r) => setTimeout(r, 200));
    const c = await suite.fleet.createJob(lipsyncJob({ requirements: { gpuClass } }));
    const parkedReply = await parked;
    assert.equal(parkedReply.state, 'failed');
    assert.equal(parkedReply.next?.id, c.id);
    await assert.rejects(
      suite.worker.status(c.id, { attempt: 1, leaseToken: parkedReply.next!.leaseToken, status: 'running', claimNext: { workerId } }),
      (e: FleetApiError) => e.status === 400 && e.fields.some((f) => f.field === 'claimNext'),
    );
    // A rejected completion claims nothing.
    await assert.rejects(
      suite.worker.status(a.id, { attempt: first.attempt, leaseToken: randomUUID(), status: 'completed', result: {}, claimNext: { workerId } }),
      (e: FleetApiError) => e.status === 409,
    );
  });

  test('run and wait: GET with waitMs answers as soon as the job is terminal', async () => {
    const gpuClass = lane();
    const workerId = await registerWorker(suite.worker, { gpuClass });
    const { id } = await suite.fleet.createJob(lipsyncJob({ requirements: { gpuClass } }));
    const waiting = suite.fleet.getJob(id, { waitMs: 60_000 });
    const { job } = (await suite.worker.claim(workerId, 0))!;
    const completedAt = Date.now();
    await suite.worker.status(id, { attempt: job.attempt, leaseToken: job.leaseToken, status: 'completed', result: { ok: true } });
    const seen = await waiting;
    const lagMs = Date.now() - completedAt;
    assert.equal(seen.state, 'succeeded');
    // Woken, not timed out: it answered well inside its own 60 s wait (within ms on an idle machine).
    assert.ok(lagMs < 30_000, `the waiter answered ${lagMs} ms after completion, long before its 60 s wait ended`);
    const unfinished = await suite.fleet.createJob(lipsyncJob({ requirements: { gpuClass: lane() } }));
    const started = Date.now();
    const timedOut = await suite.fleet.getJob(unfinished.id, { waitMs: 300 });
    assert.equal(timedOut.state, 'queued');
    assert.ok(Date.now() - started >= 290, 'a non-terminal job is returned when the wait is over');
  });

  test('a parked long-poll claim wakes on enqueue through LISTEN/NOTIFY, not the backstop poll', async () => {
    const gpuClass = lane();
    const workerId = await registerWorker(suite.worker, { gpuClass });
    const parked = suite.worker.claim(workerId, 20_000);
    await new Promise((r) => setTimeout(r, 200));
    const enqueuedAt = Date.now();
    const created = await suite.fleet.createJob(lipsyncJob({ requirements: { gpuClass } }));
    const claimed = await parked;
    const latencyMs = Date.now() - enqueuedAt;
    assert.equal(claimed?.job.id, created.id);
    // CLAIM_POLL_MS is 30 s in this file (the backstop poll comes after 22.5 s at the earliest), and
    // the claim's own wait is 20 s: a claim answered before its wait ends was woken by the NOTIFY.
    // Within milliseconds on an idle machine; the bound leaves a loaded one all the room it needs.
    assert.ok(latencyMs < 15_000, `woke after ${latencyMs} ms`);
  });

  test('list: filters by state and kind, pages with a cursor, shows only the caller\'s jobs', async () => {
    const gpuClass = lane();
    const ids = new Set<string>();
    for (let i = 0; i < 5; i++) ids.add((await suite.fleet.createJob({ kind: 'avatar.prepare', input: { source: `uploads/face-${i}.mp4` }, requirements: { gpuClass } })).id);
    const seen: string[] = [];
    const createdAt: string[] = [];
    let cursor: string | undefined;
    do {
      const page = await suite.fleet.listJobs({ kind: 'avatar.prepare', state: 'queued', limit: 2, cursor });
      assert.ok(page.items.length <= 2);
      for (const j of page.items) {
        assert.equal(j.kind, 'avatar.prepare');
        assert.equal(j.state, 'queued');
        seen.push(j.id);
        createdAt.push(j.createdAt);
      }
      cursor = page.nextCursor ?? undefined;
    } while (cursor);
    assert.equal(new Set(seen).size, seen.length, 'no job appears on two pages');
    for (const id of ids) assert.ok(seen.includes(id), 'every job appears on some page');
    assert.deepEqual(createdAt, [...createdAt].sort().reverse(), 'newest first');
    const other = await suite.orch.fleet('test-other-key-0123456789ab').listJobs({ kind: 'avatar.prepare', limit: 200 });
    assert.ok(other.items.every((j) => !ids.has(j.id)));
    await assert.rejects(suite.orch.fleet('test-other-key-0123456789ab').getJob([...ids][0]!), (e: FleetApiError) => e.status === 404);
  });

  test('deregister releases held jobs at once, without charging an attempt; the job backs off, then goes to the next claimer', async () => {
    const gpuClass = lane();
    const a = await registerWorker(suite.worker, { gpuClass });
    const b = await registerWorker(suite.worker, { gpuClass });
    const { id } = await suite.fleet.createJob(lipsyncJob({ requirements: { gpuClass } }));
    const held = (await suite.worker.claim(a, 0))!.job;
    const { released } = await suite.worker.deregister(a, { reason: 'SIGTERM' });
    assert.deepEqual(released, [id]);
    // Releases back off like expiries (poison.test.ts), so the next claim parks until the backoff ends.
    const next = (await suite.worker.claim(b, 20_000))!.job;
    assert.equal(next.id, id);
    assert.equal(next.attempt, held.attempt + 1);
    assert.equal((await suite.fleet.getJob(id)).attemptsUsed, 0);
    await assert.rejects(suite.worker.claim(a, 0), (e: FleetApiError) => e.status === 409 && e.code === 'worker_not_registered');
    await assert.rejects(suite.worker.heartbeat(a, { activity: 'idle', leases: [] }), (e: FleetApiError) => e.code === 'worker_not_registered');
  });

  test('drain: a worker told to drain gets 204 at once and sees the command in its heartbeat', async () => {
    const gpuClass = lane();
    const workerId = await registerWorker(suite.worker, { gpuClass });
    await suite.fleet.createJob(lipsyncJob({ requirements: { gpuClass } }));
    await suite.ops.commandWorker(workerId, 'drain');
    const hb = await suite.worker.heartbeat(workerId, { activity: 'idle', leases: [] });
    assert.deepEqual(hb.commands, ['drain']);
    const started = Date.now();
    assert.equal(await suite.worker.claim(workerId, 20_000), null);
    assert.ok(Date.now() - started < 10_000, 'a draining worker is not parked: it is answered long before its 20 s wait ends');
    await suite.ops.commandWorker(workerId, 'none');
    assert.ok(await suite.worker.claim(workerId, 0));
  });

  test('health, metrics and OpenAPI are served', async () => {
    const health = await fetch(`${suite.orch.url}/health`);
    assert.equal(health.status, 200);
    assert.equal(((await health.json()) as { status: string }).status, 'ok');
    const metrics = await suite.ops.metrics();
    // Job counts come from a background snapshot (metrics.test.ts checks their values).
    assert.match(metrics, /# TYPE fleet_jobs gauge/);
    assert.match(metrics, /fleet_jobs_snapshot_age_seconds [\d.]+/);
    assert.match(metrics, /fleet_claims_total\{outcome="claimed"\} \d+/);
    assert.match(metrics, /fleet_heartbeat_interval_seconds_count \d+/);
    assert.match(metrics, /fleet_http_request_duration_seconds_bucket\{.*route="\/internal\/buffer\/jobs\/claim"/);
    const doc = (await (await fetch(`${suite.orch.url}/docs-json`)).json()) as { paths: Record<string, unknown>; components: { schemas: Record<string, unknown> } };
    for (const p of ['/v1/jobs', '/internal/buffer/workers/register', '/internal/buffer/workers/{id}/heartbeat', '/internal/buffer/jobs/claim', '/internal/buffer/jobs/{id}/status', '/internal/jobs/{id}/progress', '/internal/buffer/workers/{id}/deregister']) {
      assert.ok(doc.paths[p], `OpenAPI documents ${p}`);
    }
    assert.ok(doc.components.schemas.CreateJobRequest, 'body schemas come from the contracts DTOs');
    // The committed copy (docs/openapi.json) must change with the API: `npm run openapi` rewrites it.
    const committed = path.resolve(__dirname, '../../../docs/openapi.json');
    const current = `${JSON.stringify(doc, null, 2)}\n`;
    if (process.env.UPDATE_OPENAPI === '1') writeFileSync(committed, current);
    assert.equal(current, existsSync(committed) ? readFileSync(committed, 'utf8') : '',
      'the API changed but docs/openapi.json did not: run npm run openapi and commit it');
  });
});
