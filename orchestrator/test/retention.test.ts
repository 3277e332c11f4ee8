import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { eventually } from './helpers/fixtures';
import { startOrchestratorProcess, type OrchestratorProcess } from './helpers/orchestrator-process';
import { createTestDatabase } from './helpers/test-database';

let db: Awaited<ReturnType<typeof createTestDatabase>>;
let orch: OrchestratorProcess | undefined;
before(async () => {
  db = await createTestDatabase();
});
after(async () => {
  await orch?.stop();
  await db?.drop();
});

/** `count` jobs in `state`, finished `daysAgo` days ago (NULL for a queued one), each with one attempt. */
async function jobs(count: number, state: string, daysAgo: number | null, owner: string): Promise<void> {
  await db.pool.query(
    `WITH made AS (
       INSERT INTO jobs (owner, kind, state, input, attempt, max_attempts, timeout_sec, backoff_base_ms, backoff_max_ms, created_at, finished_at)
       SELECT $3, 'lipsync', $2, '{}'::jsonb, 1, 3, 900, 2000, 60000, now() - interval '60 days',
              CASE WHEN $4::int IS NULL THEN NULL ELSE now() - make_interval(days => $4::int) END
       FROM generate_series(1, $1::int) RETURNING id)
     INSERT INTO job_attempts (job_id, attempt, worker_id, lease_token, ended_at, outcome)
     SELECT id, 1, 'w', gen_random_uuid(), now(), $2 FROM made`,
    [count, state, owner, daysAgo],
  );
}

test('finished jobs and silent workers past RETENTION_DAYS are deleted in batches; everything newer or unfinished stays', async () => {
  await jobs(23, 'succeeded', 40, 'old');
  await jobs(5, 'failed', 31, 'old');
  await jobs(4, 'cancelled', 35, 'old');
  await jobs(6, 'succeeded', 29, 'recent');
  await jobs(3, 'queued', null, 'unfinished'); // created 60 days ago, never finished
  await db.pool.query(
    `INSERT INTO workers (id, provider, mode, state, kinds, version, last_heartbeat_at) VALUES
       ('gone', 'local', 'buffer', 'stopped', '{lipsync}', 't', now() - interval '40 days'),
       ('quiet', 'local', 'buffer', 'offline', '{lipsync}', 't', now() - interval '31 days'),
       ('resting', 'local', 'buffer', 'stopped', '{lipsync}', 't', now() - interval '2 days'),
       ('veteran', 'local', 'buffer', 'online', '{lipsync}', 't', now())`,
  );
  await db.pool.query(`UPDATE workers SET registered_at = now() - interval '400 days' WHERE id = 'veteran'`);
  orch = await startOrchestratorProcess(db.url, { RETENTION_DAYS: '30', PRUNE_INTERVAL_SEC: '1', PRUNE_BATCH: '7' });
  const owners = async () => Object.fromEntries((await db.pool.query(`SELECT owner, count(*)::int AS n FROM jobs GROUP BY owner`)).rows.map((r) => [r.owner, r.n]));
  await eventually(async () => ((await owners()).old === undefined ? true : undefined), 60_000, 100);
  assert.deepEqual(await owners(), { recent: 6, unfinished: 3 });
  const attempts = await db.pool.query(`SELECT count(*)::int AS n FROM job_attempts`);
  assert.equal(attempts.rows[0].n, 9, 'the deleted jobs took their attempts with them');
  const workers = await db.pool.query(`SELECT id FROM workers ORDER BY id`);
  assert.deepEqual(workers.rows.map((r) => r.id), ['resting', 'veteran'], 'a worker seen lately stays, however long ago it registered');
  // 32 jobs at 7 a batch: 5 batches, logged as such.
  await eventually(async () => (/retention: deleted 32 jobs in 5 batches and 2 workers older than 30 days/.test(orch!.output()) ? true : undefined), 30_000, 100);
});
