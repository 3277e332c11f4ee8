import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { workerRegistration } from '@avatar-fleet/orchestrator/dist/test/helpers/fixtures';
import { useOrchestrator } from '@avatar-fleet/orchestrator/dist/test/helpers/orchestrator-suite';
import { FAST_FLEET, Lane, workerIdOf } from './helpers/fleet-fixture';

describe('buffer mode: real orchestrator and worker processes', () => {
  const suite = useOrchestrator(FAST_FLEET);
  const lanes: Lane[] = [];
  const newLane = () => {
    const l = new Lane(() => suite.orch.url, () => suite.fleet);
    lanes.push(l);
    return l;
  };
  after(async () => Promise.all(lanes.map((l) => l.cleanup())));

  test('a job runs end to end; start-up logs in order; SIGTERM mid-job finishes it within the grace period and exits 0', async () => {
    const lane = newLane();
    const worker = await lane.worker({ TEST_WORKER_TAG: 'alpha', TEST_JOB_MS: '1500', SHUTDOWN_GRACE_SEC: '30' });
    const log = worker.output();
    const order = ['config loaded', 'storage reachable', 'models loaded', 'registered', 'ready'].map((line) => log.indexOf(line));
    assert.ok(order.every((at, i) => at >= 0 && (i === 0 || at > order[i - 1]!)), `start-up lines out of order:\n${log}`);
    assert.match(log, /models loaded executionProvider=/);
    // Buffer mode serves health too (container health checks); /generate belongs to queue mode.
    const port = /ready mode=buffer port=(\d+)/.exec(log)![1];
    const hc = await fetch(`http://127.0.0.1:${port}/hc`);
    assert.equal(hc.status, 200);
    assert.deepEqual(await hc.json(), { status: 'ready' });
    assert.equal((await fetch(`http://127.0.0.1:${port}/generate`, { method: 'POST', body: '{}', headers: { 'content-type': 'application/json' } })).status, 409);

    const id = await lane.job('https://media.example/hello.wav');
    const running = await lane.until(id, (j) => j.state === 'running' && j.progress !== null);
    assert.equal(running.workerId, workerIdOf(worker));
    worker.signal('SIGTERM');
    const done = await lane.until(id, (j) => j.state !== 'running');
    assert.equal(done.state, 'succeeded');
    assert.equal(done.result!.videoKey, `jobs/${id}/attempt-1/out.txt`);
    assert.equal(lane.output(done), `alpha ${id} 1 https://media.example/hello.wav\n`);
    assert.deepEqual(await worker.exited, { code: 0, signal: null });
    assert.match(worker.output(), /deregistered released=0/);
    const views = await suite.ops.listWorkers();
    const view = views.find((w) => w.id === workerIdOf(worker))!;
    assert.equal(view.state, 'stopped');
    assert.equal(view.executionProvider, 'none');
    assert.ok(view.telemetry && typeof view.telemetry.cpuPct === 'number', 'heartbeats carried CPU telemetry');
  });

  test('SIGTERM mid-job past the grace period releases the job at once; a second worker finishes it before the lease would expire', async () => {
    const lane = newLane();
    const first = await lane.worker({ TEST_WORKER_TAG: 'first', TEST_JOB_MS: '60000', SHUTDOWN_GRACE_SEC: '0.5' });
    const id = await lane.job();
    await lane.until(id, (j) => j.state === 'running');
    const second = await lane.worker({ TEST_WORKER_TAG: 'second', TEST_JOB_MS: '100' });
    first.signal('SIGTERM');
    const done = await lane.until(id, (j) => j.state === 'succeeded');
    assert.equal(lane.output(done).split(' ')[0], 'second');
    assert.equal(done.attempt, 2);
    // Released, not expired: a lease that ran out would count as a loss. So the second worker had it
    // at once, whatever the clock says on a loaded machine.
    assert.equal(done.leaseLosses, 0, 'a released job is not a lost lease');
    assert.deepEqual(await first.exited, { code: 0, signal: null });
    assert.match(first.output(), /releasing running jobs why="grace period over"/);
    assert.match(first.output(), /deregistered released=1/);
    assert.equal(workerIdOf(second) !== workerIdOf(first), true);
  });

  test('a second SIGTERM releases the running job at once, without waiting out the grace period', async () => {
    const lane = newLane();
    const worker = await lane.worker({ TEST_JOB_MS: '60000', SHUTDOWN_GRACE_SEC: '300' });
    const id = await lane.job();
    await lane.until(id, (j) => j.state === 'running');
    const stoppedAt = Date.now();
    worker.signal('SIGTERM');
    await worker.waitFor(/stopping: no new jobs/);
    worker.signal('SIGTERM');
    assert.deepEqual(await worker.exited, { code: 0, signal: null });
    assert.ok(Date.now() - stoppedAt < 150_000, 'exited long before the 300 s grace period would have ended');
    assert.match(worker.output(), /releasing running jobs why=forced/);
    const job = await suite.fleet.getJob(id);
    assert.equal(job.state, 'queued', 'requeued at once by deregister');
    assert.equal(job.leaseLosses, 0);
  });

  test('SIGKILL mid-job: the job is requeued after lease expiry and finished by another worker', async () => {
    const lane = newLane();
    const doomed = await lane.worker({ TEST_WORKER_TAG: 'doomed', TEST_JOB_MS: '60000' });
    const id = await lane.job();
    await lane.until(id, (j) => j.state === 'running');
    doomed.signal('SIGKILL');
    await lane.worker({ TEST_WORKER_TAG: 'rescuer', TEST_JOB_MS: '100' });
    const done = await lane.until(id, (j) => j.state === 'succeeded');
    assert.equal(lane.output(done).split(' ')[0], 'rescuer');
    // Requeued by the lease running out (a loss), as only that can happen to a killed worker's job.
    // How soon is the reaper's and the TTL's business: leases.test.ts checks it never comes early,
    // and the chaos run measures it.
    assert.equal(done.leaseLosses, 1);
    assert.equal(done.attempt, 2);
  });

  test('the main thread blocked for 30 s: heartbeats keep arriving from their thread and the lease holds', async () => {
    const lane = newLane();
    const worker = await lane.worker({ TEST_WORKER_TAG: 'blocked', TEST_JOB_MS: '100', TEST_JOB_BUSY_MS: '30000' });
    const workerId = workerIdOf(worker);
    const id = await lane.job();
    await lane.until(id, (j) => j.state === 'running');
    const samples: number[] = [];
    const until = Date.now() + 28_000;
    while (Date.now() < until) {
      await new Promise((r) => setTimeout(r, 2_000));
      const view = (await suite.ops.listWorkers()).find((w) => w.id === workerId)!;
      samples.push(Date.now() - Date.parse(view.lastHeartbeatAt));
      const job = await suite.fleet.getJob(id);
      if (job.state !== 'running') break;
      assert.equal(job.attempt, 1, 'the lease was never lost');
    }
    assert.ok(samples.length >= 5, `sampled ${samples.length} times`);
    // Never as old as the 5 s lease TTL (the lease would be lost): beats kept coming while the main
    // thread was blocked. (About 1 s apart on an idle machine; load stretches them, the TTL does not.)
    assert.ok(Math.max(...samples) < 5_000, `heartbeat ages while blocked (ms): ${samples.join(', ')}`);
    const done = await lane.until(id, (j) => j.state === 'succeeded');
    assert.equal(done.attempt, 1);
    assert.equal(done.leaseLosses, 0);
    assert.equal(lane.output(done).split(' ')[0], 'blocked');
  });

  test('a frozen worker loses its lease; its late completion is refused and the new attempt\'s result stands', async () => {
    const lane = newLane();
    const stale = await lane.worker({ TEST_WORKER_TAG: 'stale', TEST_JOB_MS: '100', TEST_JOB_BUSY_MS: '1500' });
    const id = await lane.job();
    await lane.until(id, (j) => j.state === 'running');
    await stale.waitFor(/job started/);
    stale.signal('SIGSTOP'); // a VM pause or a partition: no heartbeats, no progress
    await lane.worker({ TEST_WORKER_TAG: 'fresh', TEST_JOB_MS: '100' });
    const done = await lane.until(id, (j) => j.state === 'succeeded', 30_000);
    assert.equal(done.attempt, 2);
    stale.signal('SIGCONT');
    // Whichever comes first, the heartbeat's "lost" or the completion's 409, the stale result is not published.
    await stale.waitFor(/final status refused|job stopped .*reason=lease_lost/);
    const after = await suite.fleet.getJob(id);
    assert.equal(after.state, 'succeeded');
    assert.deepEqual(after.result, done.result);
    assert.equal(lane.output(after).split(' ')[0], 'fresh');
    const attempts = await suite.db.pool.query('SELECT attempt, outcome FROM job_attempts WHERE job_id = $1 ORDER BY attempt', [id]);
    assert.deepEqual(attempts.rows.map((r) => [r.attempt, r.outcome]), [[1, 'lease_lost'], [2, 'succeeded']]);
  });

  test('cancel of a running job reaches the worker, which stops it and reports it cancelled', async () => {
    const lane = newLane();
    const worker = await lane.worker({ TEST_JOB_MS: '60000' });
    const id = await lane.job();
    await lane.until(id, (j) => j.state === 'running' && j.progress !== null);
    await suite.fleet.cancelJob(id);
    const done = await lane.until(id, (j) => j.state !== 'running');
    assert.equal(done.state, 'cancelled');
    // The 60 s job was stopped by the cancel, not finished (within a second or so on an idle machine).
    await worker.waitFor(/job stopped .*reason=cancelled/);
    assert.doesNotMatch(worker.output(), /job finished/);
  });

  test('commands: drain takes nothing new until lifted; shutdown stops the worker', async () => {
    const lane = newLane();
    const worker = await lane.worker({ TEST_JOB_MS: '50' });
    const workerId = workerIdOf(worker);
    await suite.ops.commandWorker(workerId, 'drain');
    await worker.waitFor(/drain command/);
    const id = await lane.job();
    await new Promise((r) => setTimeout(r, 1_500));
    assert.equal((await suite.fleet.getJob(id)).state, 'queued', 'a draining worker claims nothing');
    await suite.ops.commandWorker(workerId, 'none');
    await lane.until(id, (j) => j.state === 'succeeded').catch((e: Error) => assert.fail(`${e.message}\n${worker.output()}`));
    assert.match(worker.output(), /drain lifted/);
    await suite.ops.commandWorker(workerId, 'shutdown');
    assert.deepEqual(await worker.exited, { code: 0, signal: null });
    assert.match(worker.output(), /stopping: no new jobs reason="shutdown command"/);
    assert.equal((await suite.ops.listWorkers()).find((w) => w.id === workerId)!.state, 'stopped');
  });

  test('a worker whose fixed id another process registers, or that an operator revokes, stops by itself', async () => {
    const lane = newLane();
    const replaced = await lane.worker({ BUFFER_WORKER_ID: `fixed-${lane.gpuClass}` });
    // A second container with the same BUFFER_WORKER_ID registers: the first is now the stale one.
    await suite.worker.register(workerRegistration({ workerId: `fixed-${lane.gpuClass}`, gpuClass: lane.gpuClass }));
    await replaced.waitFor(/this worker may no longer act; stopping reason=".*registered again \(epoch 2\)/);
    await replaced.waitFor(/stopping: no new jobs reason=stale_registration/);
    assert.deepEqual(await replaced.exited, { code: 0, signal: null });

    const revoked = await lane.worker();
    await suite.ops.revokeWorker(workerIdOf(revoked));
    await revoked.waitFor(/this worker may no longer act; stopping reason=".*revoked by an operator/);
    await revoked.waitFor(/stopping: no new jobs reason=worker_revoked/);
    assert.deepEqual(await revoked.exited, { code: 0, signal: null });
  });
});
