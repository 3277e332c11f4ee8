import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { DataSource } from 'typeorm';
import { Database } from '../src/database/database';
import { dataSourceOptions } from '../src/database/migrate';
import { createTestDatabase } from './helpers/test-database';

let db: Awaited<ReturnType<typeof createTestDatabase>>;
let dataSource: DataSource;
let database: Database;

before(async () => {
  db = await createTestDatabase();
  dataSource = await new DataSource(dataSourceOptions(db.url, 2)).initialize();
  database = new Database(dataSource);
});
after(async () => {
  await database.onApplicationShutdown();
  await dataSource.destroy();
  await db.drop();
});

/** Ends the server side of a connection, as a database restart does to every connection. */
async function terminate(pid: number): Promise<void> {
  await db.pool.query('SELECT pg_terminate_backend($1)', [pid]);
}

test('a connection dropped under a transaction fails that transaction; the process lives and the pool serves the next one', async () => {
  await assert.rejects(
    database.transaction(async (client) => {
      const { rows } = await client.query('SELECT pg_backend_pid() AS pid');
      await terminate(rows[0].pid);
      // The client is checked out and idle when the server hangs up: pg emits 'error' on it now.
      await new Promise((r) => setTimeout(r, 200));
      await client.query('SELECT 1');
    }),
  );
  const { rows } = await database.transaction((client) => client.query('SELECT 1 AS ok'));
  assert.equal(rows[0].ok, 1);
});

test('a connection dropped while a query runs on it fails that query, on both pools', async () => {
  for (const pool of [database.pool, database.relaxed]) {
    const client = await pool.connect();
    try {
      const { rows } = await client.query('SELECT pg_backend_pid() AS pid');
      // Expect the failure before it can happen: it may arrive while terminate() is still awaited.
      const sleeping = assert.rejects(client.query('SELECT pg_sleep(5)'));
      await new Promise((r) => setTimeout(r, 100));
      await terminate(rows[0].pid);
      await sleeping;
    } finally {
      client.release(true);
    }
    assert.equal((await pool.query('SELECT 1 AS ok')).rows[0].ok, 1);
  }
});
