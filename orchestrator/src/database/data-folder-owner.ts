import { mkdirSync, readFileSync, unlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import {
  describeProcess,
  isPostgresOn,
  isSameProcess,
  processInfo,
  readPostgresLock,
  waitForExit,
} from './postgres-processes';

/** What the owner file next to a data folder says: the process that started its server. */
interface OwnerRecord {
  pid: number;
  startTime: string | null;
  port: number;
}

/** Another live process owns the data folder; its server is left alone. */
export class DataFolderInUseError extends Error {}

/** How long a leftover server gets for a fast shutdown (clients cut off, one checkpoint). */
const LEFTOVER_STOP_MS = 60_000;

/** `<dataDir>.owner`: beside the data folder, so PostgreSQL's own folder holds only its files. */
export function ownerFileOf(dataDir: string): string {
  return `${path.resolve(dataDir)}.owner`;
}

/**
 * Makes this process the owner of the embedded server on `dataDir`, and clears what a crashed
 * owner left behind, so that a start after `kill -9` recovers by itself:
 *
 * - The owner file names the process that started the server (pid and start time, since pids are
 *   reused). While that process lives, the folder is its own: this throws DataFolderInUseError and
 *   signals nothing.
 * - A server still running on the folder once its owner is gone is stopped with a fast shutdown
 *   (SIGINT: committed data stays, a checkpoint is written) and waited for, then started again by
 *   the caller. It is signalled only after checking that the pid in postmaster.pid is a `postgres`
 *   on this very folder.
 *
 * The owner file is created exclusively, so of two starts racing for a free folder one wins.
 * Returns `release`, which removes the owner file when it still names this process.
 */
export async function ownDataFolder(dataDir: string, port: number, log: (message: string) => void): Promise<() => void> {
  const file = ownerFileOf(dataDir);
  mkdirSync(path.dirname(file), { recursive: true });
  const me = processInfo(process.pid);
  const record: OwnerRecord = { pid: process.pid, startTime: me?.startTime ?? null, port };
  for (;;) {
    try {
      writeFileSync(file, `${JSON.stringify(record)}\n`, { flag: 'wx' });
      break;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    }
    const previous = readOwner(file);
    const owner = previous ? processInfo(previous.pid) : null;
    if (previous && isSameProcess(owner, previous.startTime)) {
      throw new DataFolderInUseError(
        `embedded PostgreSQL data folder ${path.resolve(dataDir)} belongs to a running process, ${describeProcess(owner)}, ` +
          `whose server uses port ${previous.port}. Is another \`npm start\` running? Stop it, or give this one its own ` +
          'EMBEDDED_PG_DIR and EMBEDDED_PG_PORT, or a DATABASE_URL.',
      );
    }
    // Its owner is gone: the record is stale.
    unlinkSync(file);
  }
  try {
    await stopLeftoverServer(dataDir, log);
  } catch (error) {
    release(file);
    throw error;
  }
  return () => release(file);
}

function readOwner(file: string): OwnerRecord | null {
  try {
    const parsed = JSON.parse(readFileSync(file, 'utf8')) as Partial<OwnerRecord>;
    if (typeof parsed.pid !== 'number' || typeof parsed.port !== 'number') return null;
    return { pid: parsed.pid, startTime: typeof parsed.startTime === 'string' ? parsed.startTime : null, port: parsed.port };
  } catch {
    // Torn by a crash mid-write, or removed meanwhile: nobody can be shown to own the folder.
    return null;
  }
}

function release(file: string): void {
  if (readOwner(file)?.pid !== process.pid) return;
  try {
    unlinkSync(file);
  } catch {
    // Already gone.
  }
}

/** Stops a server that runs on `dataDir` with nobody owning it; the caller owns the folder now. */
async function stopLeftoverServer(dataDir: string, log: (message: string) => void): Promise<void> {
  const pidFile = path.join(path.resolve(dataDir), 'postmaster.pid');
  const lock = readPostgresLock(pidFile);
  if (!lock) return;
  const server = processInfo(lock.pid);
  // Gone: PostgreSQL sees the stale lock file itself and starts over it.
  if (!server) return;
  if (!isPostgresOn(server, dataDir)) {
    if (server.argv.length === 0) return; // cannot be checked here; PostgreSQL's own start says what it finds
    // The pid was reused by an unrelated process; PostgreSQL would refuse to start over its lock file.
    log(`${pidFile} names ${describeProcess(server)}, which is not PostgreSQL on this folder: removing the stale lock file`);
    unlinkSync(pidFile);
    return;
  }
  log(
    `PostgreSQL ${describeProcess(server)} is still running on ${path.resolve(dataDir)} although the process that ` +
      'started it is gone (it was killed or crashed): stopping it (fast shutdown) to start it again',
  );
  try {
    process.kill(server.pid, 'SIGINT');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ESRCH') throw error;
  }
  await waitForExit(server.pid, server.startTime, LEFTOVER_STOP_MS).catch((error: Error) => {
    throw new Error(`the PostgreSQL server left running on ${path.resolve(dataDir)} did not stop: ${error.message}`);
  });
  log(`leftover PostgreSQL pid ${server.pid} stopped`);
}
