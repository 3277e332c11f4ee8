import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { Client } from 'pg';

interface TestPostgres {
  url: string;
  stop(): Promise<void>;
}

/**
 * A fresh, migrated embedded PostgreSQL in a temporary folder, removed on stop: the same server
 * `npm test` starts (scripts/test-database.mjs), so tests and benchmarks set it up one way.
 */
export async function startBenchDatabase(): Promise<TestPostgres> {
  const script = path.resolve(__dirname, '../../../scripts/test-database.mjs');
  const { startTestPostgres } = (await import(pathToFileURL(script).href)) as {
    startTestPostgres(options?: { template?: string }): Promise<TestPostgres>;
  };
  return startTestPostgres({ template: 'bench' });
}

/** Creates an empty database `name` on the server of `url` and returns its URL. */
export async function createDatabase(url: string, name: string): Promise<string> {
  const base = url.slice(0, url.lastIndexOf('/') + 1);
  const admin = new Client({ connectionString: `${base}postgres` });
  await admin.connect();
  try {
    await admin.query(`CREATE DATABASE "${name.replace(/"/g, '')}"`);
  } finally {
    await admin.end();
  }
  return `${base}${name}`;
}
