import { randomBytes } from 'node:crypto';
import { Client, Pool } from 'pg';

/**
 * A fresh database cloned from the run's migrated template (see scripts/run-tests.mjs).
 * Each test file gets its own, so files run in parallel without seeing each other's jobs.
 */
export async function createTestDatabase(): Promise<{ url: string; pool: Pool; drop(): Promise<void> }> {
  const base = process.env.TEST_PG_BASE;
  const template = process.env.TEST_PG_TEMPLATE;
  if (!base || !template) throw new Error('run tests through `npm test` (scripts/run-tests.mjs), which starts PostgreSQL');
  const name = `test_${randomBytes(6).toString('hex')}`;
  const admin = new Client({ connectionString: `${base}postgres` });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name} TEMPLATE ${template}`);
  await admin.end();
  const url = `${base}${name}`;
  const pool = new Pool({ connectionString: url, max: 4 });
  return {
    url,
    pool,
    async drop() {
      await pool.end();
      const c = new Client({ connectionString: `${base}postgres` });
      await c.connect();
      await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await c.end();
    },
  };
}
