import { DataSource } from 'typeorm';
import { dataSourceOptions, runMigrations } from './migrate';

/** SQL that would bring the migrated schema in line with the entities; empty when they agree. */
export async function schemaDrift(url: string): Promise<{ up: string[]; down: string[] }> {
  const dataSource = new DataSource(dataSourceOptions(url, 2));
  await dataSource.initialize();
  try {
    await runMigrations(dataSource);
    const log = await dataSource.driver.createSchemaBuilder().log();
    return { up: log.upQueries.map((q) => q.query), down: log.downQueries.map((q) => q.query) };
  } finally {
    await dataSource.destroy();
  }
}
