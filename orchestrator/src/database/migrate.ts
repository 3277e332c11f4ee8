import { DataSource, type DataSourceOptions } from 'typeorm';
import { migrations } from '@avatar-fleet/migrations';
import { JobAttemptEntity } from '../jobs/job-attempt.entity';
import { JobEntity } from '../jobs/job.entity';
import { WorkerEntity } from '../fleet/worker.entity';
import { surviveDroppedConnection } from './connection-errors';

export const entities = [JobEntity, JobAttemptEntity, WorkerEntity];

export function dataSourceOptions(url: string, poolSize = 16): DataSourceOptions {
  return {
    type: 'postgres',
    url,
    entities,
    migrations,
    migrationsTableName: 'schema_migrations',
    // The schema is owned by migrations/ alone; a drift test keeps entities in step.
    synchronize: false,
    migrationsRun: false,
    // gen_random_uuid() is built into PostgreSQL 13+; no extension to install.
    uuidExtension: 'pgcrypto',
    installExtensions: false,
    extra: { max: poolSize, application_name: 'avatar-fleet', onConnect: surviveDroppedConnection },
  };
}

const MIGRATION_LOCK = 'hashtext(\'avatar-fleet.migrations\')';

/** Applies pending migrations under an advisory lock, so replicas starting together take turns. */
export async function runMigrations(dataSource: DataSource): Promise<string[]> {
  const lock = dataSource.createQueryRunner();
  await lock.connect();
  try {
    await lock.query(`SELECT pg_advisory_lock(${MIGRATION_LOCK})`);
    const applied = await dataSource.runMigrations({ transaction: 'each' });
    return applied.map((m) => m.name);
  } finally {
    await lock.query(`SELECT pg_advisory_unlock(${MIGRATION_LOCK})`).catch(() => undefined);
    await lock.release();
  }
}

export async function migrateDatabase(url: string): Promise<string[]> {
  const dataSource = new DataSource(dataSourceOptions(url, 2));
  await dataSource.initialize();
  try {
    return await runMigrations(dataSource);
  } finally {
    await dataSource.destroy();
  }
}
