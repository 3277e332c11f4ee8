import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { Pool } from 'pg';
import { GroupCommit } from '../src/database/group-commit';
import { createTestDatabase } from './helpers/test-database';

describe('GroupCommit', () => {
  let db: Awaited<ReturnType<typeof createTestDatabase>>;
  let pool: Pool;

  before(async () => {
    db = await createTestDatabase();
    pool = db.pool;
    await pool.query('CREATE TABLE gc (id int PRIMARY KEY, txid bigint)');
  });
  after(() => db.drop());

  test('concurrent operations share transactions, and each gets its own result', async () => {
    const gc = new GroupCommit(pool, { maxBatch: 64, maxInFlight: 1 });
    const results = await Promise.all(
      Array.from({ length: 50 }, (_, i) =>
        gc.run(async (c) => (await c.query('INSERT INTO gc VALUES ($1, txid_current()) RETURNING id', [i])).rows[0].id as number),
      ),
    );
    assert.deepEqual(results, Array.from({ length: 50 }, (_, i) => i));
    const { rows } = await pool.query('SELECT count(DISTINCT txid)::int AS txs FROM gc WHERE id < 50');
    assert.ok(rows[0].txs < 50, `50 operations used ${rows[0].txs} transactions`);
  });

  test('a failing operation is retried alone: its neighbours still commit, and it alone is rejected', async () => {
    const gc = new GroupCommit(pool, { maxBatch: 64, maxInFlight: 1 });
    const ops = [100, 101, 100, 102].map((id) =>
      gc.run(async (c) => (await c.query('INSERT INTO gc VALUES ($1, 0) RETURNING id', [id])).rows[0].id as number).then(
        (v) => ({ ok: v }),
        (e: Error) => ({ error: e.message }),
      ),
    );
    const outcomes = await Promise.all(ops);
    assert.equal(outcomes.filter((o) => 'error' in o).length, 1, 'one duplicate insert fails');
    assert.match(JSON.stringify(outcomes), /duplicate key/);
    const { rows } = await pool.query('SELECT array_agg(id ORDER BY id) AS ids FROM gc WHERE id >= 100');
    assert.deepEqual(rows[0].ids, [100, 101, 102]);
  });
});
