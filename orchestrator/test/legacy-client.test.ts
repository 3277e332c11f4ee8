import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { describe, test } from 'node:test';
import type { ErrorBody } from '@avatar-fleet/contracts';
import { lane, lipsyncJob } from './helpers/fixtures';
import { INTERNAL_KEY } from './helpers/orchestrator-process';
import { useOrchestrator } from './helpers/orchestrator-suite';

const SEED_CLIENT = path.join(__dirname, 'helpers/seed-buffer-client.js');

/** Runs the seed-only client as its own process to the end of its one job; its JSON lines. */
function runSeedClient(env: Record<string, string>): Promise<{ code: number | null; steps: Record<string, any>[] }> {
  return new Promise((resolve) => {
    const proc = spawn(process.execPath, [SEED_CLIENT], { env: { PATH: process.env.PATH ?? '', ...env }, stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    proc.stdout.on('data', (d: Buffer) => (out += d.toString()));
    proc.on('exit', (code) => resolve({ code, steps: out.trim().split('\n').filter(Boolean).map((l) => JSON.parse(l)) }));
  });
}

/** A lease of 2 s that heartbeats every 0.5 s must keep: a job of 5 s outlives it twice over. */
describe('a legacy MuseTalk buffer worker that knows only seed 003', () => {
  const suite = useOrchestrator({ LEASE_TTL_SEC: '2', HEARTBEAT_INTERVAL_SEC: '1', REAPER_INTERVAL_MS: '200' });

  const post = async (route: string, body: unknown) => {
    const res = await fetch(`${suite.orch.url}${route}`, {
      method: 'POST', headers: { Authorization: `Bearer ${INTERNAL_KEY}`, 'Content-Type': 'application/json' }, body: JSON.stringify(body),
    });
    const text = await res.text();
    return { status: res.status, body: text ? JSON.parse(text) : null, reason: res.headers.get('x-no-job-reason') };
  };

  test('heartbeat, claim, running, completed without ever registering; its job outlives the lease; its result is kept as sent', async () => {
    const gpuClass = lane();
    const workerId = `buffer-${gpuClass}`;
    // The job needs 16 GB: only the VRAM read out of GPU_CLASS_NAME lets this host take it.
    const job = await suite.fleet.createJob(lipsyncJob({ input: { avatarId: 'avatar-1', audio: 'uploads/speech.wav' }, requirements: { gpuClass, minVramGb: 16 } }));
    const run = await runSeedClient({
      ORCHESTRATOR_BASE_URL: suite.orch.url, INTERNAL_API_KEY: INTERNAL_KEY, BUFFER_WORKER_ID: workerId,
      GPU_CLASS_NAME: `${gpuClass} (24 GB)`, HEARTBEAT_MS: '500', JOB_MS: '5000',
    });
    assert.equal(run.code, 0, JSON.stringify(run.steps));
    const step = (name: string) => run.steps.find((s) => s.step === name)!;
    assert.equal(step('claimed').job_id, job.id);
    // It knows nothing of storagePrefix: its storage keys come already inside the owner's folder.
    assert.deepEqual(step('claimed').input, { avatarId: 'avatar-1', audio: 'tenants/product/uploads/speech.wav' });
    assert.equal(step('running').status, 200);
    assert.deepEqual(step('completed'), { step: 'completed', status: 200, body: { jobId: job.id, state: 'succeeded' } });
    // Heartbeats listed no lease, and each renewed the one the orchestrator knew it held.
    assert.ok(run.steps.some((s) => s.step === 'heartbeat' && s.renewed?.includes(job.id)), JSON.stringify(run.steps));
    assert.ok(run.steps.filter((s) => s.step === 'heartbeat').every((s) => s.status === 200 && s.lost.length === 0));

    const done = await suite.fleet.getJob(job.id);
    assert.deepEqual([done.state, done.attempt, done.leaseLosses], ['succeeded', 1, 0]);
    assert.deepEqual(done.result, { video_url: `b2://talking-avatar/results/${job.id}.mp4`, duration_sec: 2.5 });
    const worker = (await suite.ops.listWorkers()).find((w) => w.id === workerId)!;
    assert.deepEqual([worker.gpuClass, worker.vramGb, worker.credential, worker.kinds], [gpuClass, 24, 'shared-key', ['lipsync']]);
    assert.match(suite.orch.output(), new RegExp(`worker ${workerId} registered implicitly as a legacy host`));
  });

  test('every refusal such a client meets names what to send', async () => {
    const gpuClass = lane();
    const workerId = `buffer-${gpuClass}`;
    // Registered implicitly without VRAM: the 204 says which jobs need more, and how to register it.
    await suite.fleet.createJob(lipsyncJob({ requirements: { gpuClass, minVramGb: 16 } }));
    const hb = await post(`/internal/buffer/workers/${workerId}/heartbeat`, { gpu_class: gpuClass });
    assert.equal(hb.status, 200);
    const empty = await post('/internal/buffer/jobs/claim', { worker_id: workerId, wait_ms: 0 });
    assert.equal(empty.status, 204);
    assert.match(empty.reason!, /1 need up to 16 GB of VRAM \(register vramGb, or a GPU_CLASS_NAME such as "RTX 3090 \(24 GB\)"\)/);
    const otherClass = await post('/internal/buffer/jobs/claim', { worker_id: `buffer-${lane()}`, gpu_class_name: 'RTX 4090 (24 GB)', wait_ms: 0 });
    assert.match(otherClass.reason!, /need gpu class "lane-/);

    const noFence = await post(`/internal/buffer/jobs/00000000-0000-4000-8000-000000000001/status`, { status: 'completed', result: {} });
    assert.equal(noFence.status, 400);
    const { error } = noFence.body as ErrorBody;
    assert.deepEqual(error.fields, [
      { field: 'attempt', problems: ['attempt is required: send the attempt from the claim answer'] },
      { field: 'leaseToken', problems: ['leaseToken is required: send the leaseToken from the claim answer'] },
    ]);
    const noWorker = await post('/internal/buffer/jobs/claim', { wait_ms: 0 });
    assert.match((noWorker.body as ErrorBody).error.message, /workerId is required: the id this worker registered with \(BUFFER_WORKER_ID\)/);
    const both = await post('/internal/buffer/jobs/claim', { worker_id: workerId, workerId, wait_ms: 0 });
    assert.match((both.body as ErrorBody).error.message, /send workerId once/);
  });
});
