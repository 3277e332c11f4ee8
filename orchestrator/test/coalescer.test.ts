import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Coalescer } from '../src/database/coalescer';

test('requests arriving while a batch is in flight share the next batch, each gets its own result', async () => {
  const batches: number[][] = [];
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  const coalescer = new Coalescer<number, number>(async (batch) => {
    batches.push(batch);
    if (batches.length === 1) await gate;
    return batch.map((n) => n * 10);
  }, { maxBatch: 100, maxInFlight: 1 });
  const first = coalescer.submit(1);
  const rest = [2, 3, 4, 5].map((n) => coalescer.submit(n));
  release();
  assert.deepEqual(await Promise.all([first, ...rest]), [10, 20, 30, 40, 50]);
  assert.deepEqual(batches, [[1], [2, 3, 4, 5]]);
});

test('maxBatch splits a long queue; a failing batch rejects only its own requests', async () => {
  const coalescer = new Coalescer<number, number>(async (batch) => {
    if (batch.includes(3)) throw new Error('batch with 3 failed');
    return batch;
  }, { maxBatch: 2, maxInFlight: 1 });
  // The first request starts a batch of its own at once; the rest queue behind it in pairs: [1] [2,3] [4,5].
  const outcomes = await Promise.allSettled([1, 2, 3, 4, 5].map((n) => coalescer.submit(n)));
  assert.deepEqual(outcomes.map((o) => o.status), ['fulfilled', 'rejected', 'rejected', 'fulfilled', 'fulfilled']);
});

test('a batch answered with the wrong number of results rejects instead of mis-assigning', async () => {
  const coalescer = new Coalescer<number, number>(async () => [1], { maxBatch: 10, maxInFlight: 1 });
  const gate = coalescer.submit(0);
  const outcomes = await Promise.allSettled([gate, coalescer.submit(1), coalescer.submit(2)]);
  assert.equal(outcomes[0]!.status, 'fulfilled');
  assert.deepEqual(outcomes.slice(1).map((o) => o.status), ['rejected', 'rejected']);
});
