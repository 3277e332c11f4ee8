import { startEmbeddedPostgres, type EmbeddedDatabase } from '../database/embedded-postgres';

/** DATABASE_URL when set; otherwise the embedded server of `npm start` (same folder and port defaults). */
export async function resolveDatabaseUrl(): Promise<{ url: string; embedded: EmbeddedDatabase | null }> {
  if (process.env.DATABASE_URL) return { url: process.env.DATABASE_URL, embedded: null };
  const embedded = await startEmbeddedPostgres(
    process.env.EMBEDDED_PG_DIR ?? '.data/postgres',
    Number(process.env.EMBEDDED_PG_PORT ?? 54329),
  );
  return { url: embedded.url, embedded };
}
