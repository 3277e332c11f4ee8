import path from 'node:path';
import { pathToFileURL } from 'node:url';

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
