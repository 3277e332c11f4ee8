import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { FleetApiError } from '@avatar-fleet/contracts';
import { backoffDelay, retry } from '../src/runtime/retry';
import { resolveKinds } from '../src/pipelines/pipeline';

describe('retry with capped exponential backoff and jitter (injected sleep, no waiting)', () => {
  test('delays grow exponentially up to the cap, each drawn uniformly below its ceiling', () => {
    const policy = { baseMs: 500, maxMs: 30_000 };
    assert.deepEqual([0, 1, 2, 3, 10].map((n) => backoffDelay(policy, n, () => 0.999999)), [499, 999, 1999, 3999, 29999]);
    assert.equal(backoffDelay(policy, 5, () => 0), 0);
  });

  test('retries transient failures until success, and only those', async () => {
    const waits: number[] = [];
    let calls = 0;
    const value = await retry(async () => {
      if (++calls < 4) throw new FleetApiError(0, 'network_error', 'no answer');
      return 'ok';
    }, { policy: { baseMs: 100, maxMs: 250 }, retryable: (e) => e instanceof FleetApiError && e.transient, sleep: async (ms) => void waits.push(ms), random: () => 0.5 });
    assert.equal(value, 'ok');
    assert.deepEqual(waits, [50, 100, 125]);
    await assert.rejects(
      retry(async () => { throw new FleetApiError(409, 'stale_lease', 'stale'); }, { policy: { baseMs: 1, maxMs: 1 }, retryable: (e) => e instanceof FleetApiError && e.transient, sleep: async () => assert.fail('no wait for a 409') }),
      /stale/,
    );
  });

  test('an aborted signal stops retrying with the last error', async () => {
    const stop = new AbortController();
    let calls = 0;
    await assert.rejects(retry(async () => {
      calls++;
      throw new FleetApiError(503, 'internal_error', 'down');
    }, { policy: { baseMs: 1, maxMs: 1 }, retryable: () => true, signal: stop.signal, sleep: async () => stop.abort() }), /down/);
    assert.equal(calls, 1);
  });
});

describe('pipeline handler map checked at start', () => {
  const handler = async () => ({ videoKey: 'k', durationSec: 1, frameCount: 1 });
  test('the kinds a worker takes: WORKER_KINDS, or every kind with a handler', () => {
    assert.deepEqual(resolveKinds({ lipsync: handler }), ['lipsync']);
    assert.deepEqual(resolveKinds({ lipsync: handler }, ['lipsync']), ['lipsync']);
  });
  test('a wanted kind without a handler, an empty build, or a handler for an unknown kind is refused', () => {
    assert.throws(() => resolveKinds({ lipsync: handler }, ['avatar.prepare']), /WORKER_KINDS names avatar\.prepare, but this build has no pipeline for it/);
    assert.throws(() => resolveKinds({}), /no pipeline for any job kind/);
    assert.throws(() => resolveKinds({ lipsync: handler, upscale: handler } as never), /unknown job kind "upscale"/);
  });
});
