import { writeSync } from 'node:fs';

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';
const RANK: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

export type LogFields = Record<string, string | number | boolean | undefined | null>;

export interface Logger {
  debug(message: string, fields?: LogFields): void;
  info(message: string, fields?: LogFields): void;
  warn(message: string, fields?: LogFields): void;
  error(message: string, fields?: LogFields): void;
  child(fields: LogFields): Logger;
}

/**
 * One line per event: `time LEVEL message key=value ...`. Written with writeSync on the file
 * descriptor, so the heartbeat thread's lines appear even while the main thread is blocked
 * (worker_threads' console is relayed through the main thread's event loop).
 */
export function createLogger(level: LogLevel = 'info', bound: LogFields = {}): Logger {
  const write = (at: LogLevel, message: string, fields?: LogFields) => {
    if (RANK[at] < RANK[level]) return;
    const all = { ...bound, ...fields };
    const tail = Object.entries(all)
      .filter(([, v]) => v !== undefined && v !== null && v !== '')
      .map(([k, v]) => `${k}=${typeof v === 'string' && /[\s"=]/.test(v) ? JSON.stringify(v) : String(v)}`)
      .join(' ');
    const line = `${new Date().toISOString()} ${at.toUpperCase().padEnd(5)} ${message}${tail ? ` ${tail}` : ''}\n`;
    try {
      writeSync(at === 'error' || at === 'warn' ? 2 : 1, line);
    } catch {
      // A closed stdout (EPIPE) must not take the worker down.
    }
  };
  return {
    debug: (m, f) => write('debug', m, f),
    info: (m, f) => write('info', m, f),
    warn: (m, f) => write('warn', m, f),
    error: (m, f) => write('error', m, f),
    child: (fields) => createLogger(level, { ...bound, ...fields }),
  };
}

export function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** The first line of an error's message, at most 300 characters: native libraries' messages run on. */
export function firstLine(error: unknown): string {
  return errorMessage(error).split('\n')[0]!.slice(0, 300);
}
