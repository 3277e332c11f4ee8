import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { eventually } from './helpers/fixtures';
import { startOrchestratorProcess, type OrchestratorProcess } from './helpers/orchestrator-process';
import { createTestDatabase } from './helpers/test-database';

let db: Awaited<ReturnType<typeof createTestDatabase>>;
let orch: OrchestratorProcess;
before(async () => {
  db = await createTestDatabase();
  orch = await startOrchestratorProcess(db.url, { METRICS_REFRESH_SEC: '1' });
});
after(async () => {
  await orch?.stop();
  await db?.drop();
});

async function scrape(): Promise<{ queued: number; age: number }> {
  const text = await orch.operator().metrics();
  const queued = /fleet_jobs\{kind="lipsync",state="queued"\} (\d+)/.exec(text);
  const age = /fleet_jobs_snapshot_age_seconds ([\d.e+-]+)/.exec(text);
  assert.ok(age, 'the snapshot age is exported');
  return { queued: queued ? Number(queued[1]) : 0, age: Number(age[1]) };
}

const insertQueued = (count: number) => db.pool.query(
  `INSERT INTO jobs (owner, kind, state, input, max_attempts, timeout_sec, backoff_base_ms, backoff_max_ms)
   SELECT 'product', 'lipsync', 'queued', '{}'::jsonb, 3, 900, 2000, 60000 FROM generate_series(1, $1::int)`,
  [count],
);

test('/metrics serves job counts from a snapshot: a scrape does not recount, the background recount catches up', async () => {
  await insertQueued(3);
  // The first count runs at start-up, before these jobs existed; a recount sees them.
  await eventually(async () => ((await scrape()).queued === 3 ? true : undefined), 30_000, 100);
  await insertQueued(4);
  // Right after, the count is the snapshot's, not the table's: scrapes do not count the table.
  const cached = await scrape();
  if (cached.age < 1) assert.equal(cached.queued, 3, 'a scrape within the refresh interval serves the previous count');
  // Within a refresh interval or so the background recount sees the new jobs (the bound only ends a broken run).
  await eventually(async () => ((await scrape()).queued === 7 ? true : undefined), 30_000, 100);
  assert.ok((await scrape()).age < 30, 'the snapshot keeps being refreshed');
});
