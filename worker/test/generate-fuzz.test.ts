import assert from 'node:assert/strict';
import http from 'node:http';
import { after, before, describe, test } from 'node:test';
import type { ErrorBody } from '@avatar-fleet/contracts';
import { assertClean, withFuzzSession } from '@avatar-fleet/orchestrator/dist/test/helpers/fuzz';
import { sendRaw } from '@avatar-fleet/orchestrator/dist/test/helpers/fuzz-runner';
import { leaseFor } from '@avatar-fleet/orchestrator/dist/test/helpers/lease-for';
import { useOrchestrator } from '@avatar-fleet/orchestrator/dist/test/helpers/orchestrator-suite';
import { createTestDatabase } from '@avatar-fleet/orchestrator/dist/test/helpers/test-database';
import { FAST_FLEET, Lane, workerIdOf } from './helpers/fleet-fixture';
import { fuzzGenerate } from './helpers/generate-fuzz';
import type { WorkerProcess } from './helpers/worker-process';

/** Fixed, so a failure here is found again with `npm run fuzz -- --seed 20261122 --per-endpoint 100 --only generate`. */
const SEED = 20261122;
const PER_ENDPOINT = 100;

test(`${PER_ENDPOINT} hostile envelopes to a queue-mode worker's POST /generate: no 5xx, crash, state change, leaked secret or unnamed 4xx`, async () => {
  const db = await createTestDatabase();
  try {
    const log: string[] = [];
    const report = await withFuzzSession(db.url, 65_536, (session) => fuzzGenerate(session, { seed: SEED, perEndpoint: PER_ENDPOINT, log: (line) => log.push(line) }));
    assertClean(report, PER_ENDPOINT, log);
  } finally {
    await db.drop();
  }
});

describe('what the fuzzer found in POST /generate', () => {
  const suite = useOrchestrator(FAST_FLEET);
  const lane = new Lane(() => suite.orch.url, () => suite.fleet);
  let worker: WorkerProcess;
  let base: string;
  before(async () => {
    worker = await lane.worker({ WORKER_MODE: 'queue', TEST_JOB_MS: '10' });
    base = `http://127.0.0.1:${/ready mode=queue port=(\d+)/.exec(worker.output())![1]}`;
  });
  after(() => lane.cleanup());

  /** A POST on one kept-alive connection, as the sidecar sends them. */
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  after(() => agent.destroy());
  const post = (body: string | Buffer, type = 'application/json') =>
    new Promise<{ status: number; body: Record<string, unknown> & Partial<ErrorBody> }>((resolve, reject) => {
      const req = http.request(`${base}/generate`, { method: 'POST', agent, headers: { 'content-type': type } }, (res) => {
        let text = '';
        res.on('data', (c: Buffer) => (text += c.toString()));
        res.on('end', () => resolve({ status: res.statusCode!, body: JSON.parse(text) }));
      });
      req.on('error', reject);
      // Written, then ended: sent chunked, without a Content-Length to refuse it by.
      req.write(body);
      req.end();
    });
  const envelope = async () => {
    await lane.job();
    const job = (await leaseFor(suite.db.pool, workerIdOf(worker), Number(FAST_FLEET.LEASE_TTL_SEC)))!;
    return { jobId: job.id, kind: job.kind, input: job.input, attempt: job.attempt, leaseToken: job.leaseToken };
  };

  test('an oversized body, sent without a length, gets its 413 and the connection still serves the next request', async () => {
    // Leaving the body half read reset the connection, or (kept alive) left the next request unanswered.
    const big = await post(Buffer.from(JSON.stringify({ pad: 'x'.repeat(2 * 1024 * 1024) })));
    assert.equal(big.status, 413);
    assert.deepEqual(big.body.error?.fields?.map((f) => f.field), ['(body)']);
    assert.equal((await post('{}')).status, 400);
  });

  test('a refused envelope names its fields in the message; the media type is case-insensitive', async () => {
    const res = await post(JSON.stringify({ kind: 'lipsync', input: {}, attempt: 1 }), 'APPLICATION/JSON; charset=utf-8');
    assert.equal(res.status, 400, 'APPLICATION/JSON is JSON');
    assert.match(res.body.error!.message, /jobId: .*leaseToken: /);
  });

  test('malformed HTTP gets an ErrorBody naming the request (Node answered with no body)', async () => {
    const answer = await sendRaw(new URL(base), Buffer.from('POST /generate HTTP/1.1\r\nhost: x\r\nx-bad: a\u0000b\r\ncontent-length: 2\r\n\r\n{}', 'latin1'));
    assert.ok(!('error' in answer));
    assert.equal(answer.status, 400);
    assert.deepEqual((JSON.parse(answer.body.toString()) as ErrorBody).error.fields?.map((f) => f.field), ['(request)']);
  });

  test('a job the orchestrator does not know is a 409, not a 502 that asks Salad to retry', async () => {
    const res = await post(JSON.stringify({ ...(await envelope()), jobId: '00000000-0000-4000-8000-000000000000' }));
    assert.equal(res.status, 409);
    assert.equal((res.body.error as unknown as { code: string }).code, 'not_found');
  });

  test('an input refused over a huge key is still reported failed (its message was over the 4000 the orchestrator takes)', async () => {
    const given = await envelope();
    const res = await post(JSON.stringify({ ...given, input: { ...given.input, ['k'.repeat(5_000)]: 1 } }));
    assert.equal(res.status, 200);
    assert.equal(res.body.status, 'failed');
    assert.equal((await suite.fleet.getJob(given.jobId)).state, 'failed');
  });
});
