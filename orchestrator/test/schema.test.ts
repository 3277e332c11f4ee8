import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Client } from 'pg';
import { schemaDrift } from '../src/database/schema-drift';

test('migrations build exactly the schema the entities describe (no drift)', async () => {
  const base = process.env.TEST_PG_BASE!;
  const name = `drift_${process.pid}`;
  const admin = new Client({ connectionString: `${base}postgres` });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name} TEMPLATE template0`);
  try {
    const drift = await schemaDrift(`${base}${name}`);
    assert.deepEqual(drift.up, [], `entities and migrations differ; run npm run migration:generate -- <verb-noun>:\n${drift.up.join('\n')}`);
    const check = new Client({ connectionString: `${base}${name}` });
    await check.connect();
    const { rows } = await check.query(`SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'jobs' ORDER BY indexname`);
    await check.end();
    const def = (name: string) => rows.find((r: { indexname: string }) => r.indexname === name)?.indexdef ?? '';
    assert.match(def('jobs_claim_idx'), /\(priority DESC, run_after, kind, COALESCE\(gpu_class, ''::text\), id\) WHERE \(state = 'queued'/, 'the claim index the migration owns exists');
    assert.match(def('jobs_matured_idx'), /\(run_after\) INCLUDE \(kind\) WHERE \(state = 'queued'/, 'so does the matured-job index');
    assert.equal(def('jobs_claimable_idx'), '', 'the old claim index is gone');
  } finally {
    await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    await admin.end();
  }
});
