import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import axios from 'axios';
import { freePort } from '@avatar-fleet/orchestrator/dist/test/helpers/free-port';
import { leaseFor } from '@avatar-fleet/orchestrator/dist/test/helpers/lease-for';
import { useOrchestrator } from '@avatar-fleet/orchestrator/dist/test/helpers/orchestrator-suite';
import { FAST_FLEET, Lane, workerIdOf } from './helpers/fleet-fixture';
import { startWorkerProcess } from './helpers/worker-process';

describe('queue mode (Salad Job Queue): /hc, /ping, /generate', () => {
  const suite = useOrchestrator(FAST_FLEET);
  const lane = new Lane(() => suite.orch.url, () => suite.fleet);
  after(() => lane.cleanup());
  const http = axios.create({ validateStatus: () => true });

  test('the sidecar\'s envelope runs end to end: progress and status reach the orchestrator, the answer carries the result', async () => {
    const port = await freePort();
    const base = `http://127.0.0.1:${port}`;
    const worker = await lane.worker({ WORKER_MODE: 'queue', WORKER_PORT: String(port), TEST_WORKER_TAG: 'salad', TEST_JOB_MS: '800' });
    assert.equal((await http.get(`${base}/ping`)).status, 200);
    assert.deepEqual((await http.get(`${base}/hc`)).data, { status: 'ready' });

    // The test plays the orchestrator's queue dispatcher: lease the job to this worker, then forward the envelope.
    const id = await lane.job('https://media.example/queue.wav');
    const claimed = (await leaseFor(suite.db.pool, workerIdOf(worker), Number(FAST_FLEET.LEASE_TTL_SEC)))!;
    const envelope = {
      jobId: claimed.id, kind: claimed.kind, input: claimed.input, attempt: claimed.attempt, leaseToken: claimed.leaseToken, storagePrefix: claimed.storagePrefix,
    };
    const pending = http.post(`${base}/generate`, envelope);
    await lane.until(id, (j) => j.progress !== null && j.state === 'running');
    const busy = await http.post(`${base}/generate`, { ...envelope, jobId: '00000000-0000-4000-8000-000000000000' });
    assert.equal(busy.status, 503, 'one slot, already running: worth a Salad retry');
    const answer = await pending;
    assert.equal(answer.status, 200);
    assert.equal(answer.data.status, 'completed');
    const job = await suite.fleet.getJob(id);
    assert.equal(job.state, 'succeeded');
    assert.deepEqual(job.result, answer.data.result);
    assert.equal(lane.output(job).split(' ')[0], 'salad', 'the output is in the owner\'s namespace, as the envelope said');
  });

  test('while still starting (orchestrator not reachable yet): /ping answers, /hc and /generate say 503; SIGTERM then exits 0', async () => {
    const port = await freePort();
    const base = `http://127.0.0.1:${port}`;
    const worker = startWorkerProcess(lane.env({ WORKER_MODE: 'queue', WORKER_PORT: String(port), ORCHESTRATOR_BASE_URL: 'http://127.0.0.1:9' }));
    await worker.waitFor(/registration failed; retrying/);
    assert.equal((await http.get(`${base}/ping`)).status, 200);
    const hc = await http.get(`${base}/hc`);
    assert.equal(hc.status, 503);
    assert.deepEqual(hc.data, { status: 'loading' });
    const early = await http.post(`${base}/generate`, {
      jobId: '00000000-0000-4000-8000-000000000001', kind: 'lipsync', input: {}, attempt: 1, leaseToken: '00000000-0000-4000-8000-000000000002',
    });
    assert.equal(early.status, 503);
    worker.signal('SIGTERM');
    assert.deepEqual(await worker.exited, { code: 0, signal: null });
  });

  test('malformed envelopes get a 4xx naming the problem; a stale lease gets 409 and changes nothing', async () => {
    const port = await freePort();
    const base = `http://127.0.0.1:${port}`;
    const worker = await lane.worker({ WORKER_MODE: 'queue', WORKER_PORT: String(port), TEST_JOB_MS: '50' });
    const missing = await http.post(`${base}/generate`, { kind: 'lipsync', input: {}, attempt: 1 });
    assert.equal(missing.status, 400);
    const fields = missing.data.error.fields.map((f: { field: string }) => f.field).sort();
    assert.deepEqual(fields, ['jobId', 'leaseToken']);
    const escaping = await http.post(`${base}/generate`, {
      jobId: '00000000-0000-4000-8000-000000000001', kind: 'lipsync', input: {}, attempt: 1, leaseToken: '00000000-0000-4000-8000-000000000002',
      storagePrefix: 'tenants/../',
    });
    assert.equal(escaping.status, 400);
    assert.deepEqual(escaping.data.error.fields.map((f: { field: string }) => f.field), ['storagePrefix']);
    const notJson = await http.post(`${base}/generate`, 'nope', { headers: { 'content-type': 'application/json' }, transformRequest: (d) => d });
    assert.equal(notJson.status, 400);
    assert.match(notJson.data.error.message, /not valid JSON/);
    assert.equal((await http.post(`${base}/generate`, 'x=1', { headers: { 'content-type': 'text/plain' } })).status, 415);
    assert.equal((await http.get(`${base}/generate`)).status, 405);
    assert.equal((await http.get(`${base}/nowhere`)).status, 404);

    const id = await lane.job();
    const claimed = (await leaseFor(suite.db.pool, workerIdOf(worker), Number(FAST_FLEET.LEASE_TTL_SEC)))!;
    const stale = await http.post(`${base}/generate`, {
      jobId: claimed.id, kind: claimed.kind, input: claimed.input, attempt: claimed.attempt, leaseToken: '11111111-1111-4111-8111-111111111111',
    });
    assert.equal(stale.status, 409);
    // Its first progress report was refused (409), so the worker stopped the job instead of finishing it.
    assert.equal(stale.data.status, 'abandoned');
    assert.equal(stale.data.error.code, 'lease_lost');
    const job = await suite.fleet.getJob(id);
    assert.equal(job.state, 'running', 'the stale attempt changed nothing');
    assert.equal(job.result, null);
    const badInput = await http.post(`${base}/generate`, { jobId: claimed.id, kind: claimed.kind, input: { audio: 42 }, attempt: claimed.attempt, leaseToken: claimed.leaseToken });
    assert.equal(badInput.status, 200);
    assert.equal(badInput.data.status, 'failed');
    assert.equal(badInput.data.error.code, 'invalid_input');
    assert.equal((await suite.fleet.getJob(id)).state, 'failed');

    // Drained, the worker turns envelopes away with a retryable 503, so Salad sends them elsewhere.
    await suite.ops.commandWorker(workerIdOf(worker), 'drain');
    await worker.waitFor(/drain command/);
    const drained = await http.post(`${base}/generate`, { jobId: claimed.id, kind: claimed.kind, input: claimed.input, attempt: claimed.attempt, leaseToken: claimed.leaseToken });
    assert.equal(drained.status, 503);
    assert.match(drained.data.error.message, /draining/);
  });
});
