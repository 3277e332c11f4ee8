import { migrateDatabase } from '../database/migrate';
import { resolveDatabaseUrl } from './database-url';

/** `npm run migrate`: applies pending migrations to DATABASE_URL (or the embedded database). */
async function main(): Promise<void> {
  const { url, embedded } = await resolveDatabaseUrl();
  try {
    const applied = await migrateDatabase(url);
    console.log(applied.length ? `applied: ${applied.join(', ')}` : 'schema is up to date');
  } finally {
    await embedded?.stop();
  }
}

main().catch((error: Error) => {
  console.error(`migrate failed: ${error.message}`);
  process.exit(1);
});
