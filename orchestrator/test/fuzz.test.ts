import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ENDPOINTS } from './helpers/fuzz-endpoints';
import { hostileRequest, type FuzzRequest } from './helpers/fuzz-requests';
import { unnamedProblem } from './helpers/fuzz-runner';
import { Rng } from './helpers/fuzz-values';
import { assertClean, fuzzOrchestrator } from './helpers/fuzz';
import { createTestDatabase } from './helpers/test-database';

/** Fixed, so a failure here is found again with `npm run fuzz -- --seed 20261122 --per-endpoint 100`. */
const SEED = 20261122;
const PER_ENDPOINT = 100;

describe('hostile input (the generator of `npm run fuzz`, fewer requests)', () => {
  test('the same seed generates the same requests', () => {
    const ep = ENDPOINTS.find((e) => e.name.endsWith('/status'))!;
    const valid = { param: '6f1c0d4e-8a51-4c47-9a57-6a4b1a0f3c21', body: { attempt: 1, leaseToken: '6f1c0d4e-8a51-4c47-9a57-6a4b1a0f3c22', status: 'running' } };
    const run = (seed: number) => {
      const rng = new Rng(seed);
      return Array.from({ length: 50 }, () => hostileRequest(rng, ep, valid, ['w-1'], { product: 'p', other: 'o', operator: 'op', internal: 'i', tokens: ['t'] }, 4096));
    };
    assert.deepEqual(run(7), run(7));
    assert.notDeepEqual(run(7), run(8));
  });

  test('a 4xx that does not name what the request got wrong is caught', () => {
    const req: FuzzRequest = { what: 'replace kind', method: 'POST', path: '/v1/jobs', headers: {}, blame: ['kind'] };
    const answer = (status: number, error: unknown) => ({ status, head: '', body: Buffer.from(JSON.stringify({ error })) });
    const field = (name: string) => ({ code: 'validation_failed', message: `invalid request: ${name}: bad`, fields: [{ field: name, problems: ['bad'] }] });
    assert.equal(unnamedProblem(answer(400, field('kind')), req), null);
    assert.match(unnamedProblem(answer(400, field('priority')), req)!, /not \["kind"\]/);
    assert.match(unnamedProblem(answer(400, { code: 'validation_failed', message: 'invalid request', fields: [{ field: 'kind', problems: ['x'] }] }), req)!, /not in the message/);
    assert.match(unnamedProblem(answer(401, { code: 'unauthorized', message: 'nope, not you' }), req)!, /names neither header/);
    assert.match(unnamedProblem({ status: 400, head: '', body: Buffer.from('Client Error') }, req)!, /not JSON/);
  });

  test(`${PER_ENDPOINT} hostile requests per endpoint: no 5xx, crash, state change, leaked secret or unnamed 4xx`, async () => {
    const db = await createTestDatabase();
    try {
      const log: string[] = [];
      const report = await fuzzOrchestrator(db.url, { seed: SEED, perEndpoint: PER_ENDPOINT, bodyLimit: 65_536, log: (line) => log.push(line) });
      assertClean(report, PER_ENDPOINT * ENDPOINTS.length, log);
    } finally {
      await db.drop();
    }
  });
});
