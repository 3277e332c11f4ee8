import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { Client } from 'pg';
import { eventually } from './helpers/fixtures';
import { startOrchestratorProcess, type OrchestratorProcess } from './helpers/orchestrator-process';
import { createTestDatabase } from './helpers/test-database';

let db: Awaited<ReturnType<typeof createTestDatabase>>;
let orch: OrchestratorProcess;
before(async () => {
  db = await createTestDatabase();
  orch = await startOrchestratorProcess(db.url);
});
after(async () => {
  await orch?.stop();
  await db?.drop();
});

/** Runs one statement from the server's maintenance database: a database cannot bar connections to itself. */
async function asAdmin(sql: string): Promise<void> {
  const admin = new Client({ connectionString: `${process.env.TEST_PG_BASE}postgres` });
  await admin.connect();
  try {
    await admin.query(sql);
  } finally {
    await admin.end();
  }
}

async function health(): Promise<{ status: number; body: { status: string; error?: Record<string, { message?: string }> } }> {
  const res = await fetch(`${orch.url}/health`);
  return { status: res.status, body: (await res.json()) as never };
}

test('/health is 503 naming the notifications while the LISTEN connection is down, and 200 once it is back', async () => {
  assert.equal((await health()).status, 200);
  const name = new URL(db.url).pathname.slice(1);
  const inside = await db.pool.connect(); // opened before connections are barred
  // New connections are refused, so the listener cannot reconnect until they are allowed again.
  await asAdmin(`ALTER DATABASE ${name} ALLOW_CONNECTIONS false`);
  try {
    const { rowCount } = await inside.query(
      `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND query LIKE 'LISTEN %'`);
    assert.equal(rowCount, 1, 'the orchestrator\'s LISTEN connection was found');
    const down = await eventually(async () => {
      const answer = await health();
      return answer.status === 503 ? answer : undefined;
    }, 30_000);
    assert.equal(down.body.status, 'error');
    assert.match(down.body.error?.notifications?.message ?? '', /LISTEN connection lost/);
  } finally {
    inside.release();
    await asAdmin(`ALTER DATABASE ${name} ALLOW_CONNECTIONS true`);
  }
  await eventually(async () => ((await health()).status === 200 ? true : undefined), 30_000, 100);
});
