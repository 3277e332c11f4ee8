import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';

const TEST_WORKER = path.resolve(__dirname, '../fixtures/test-worker.js');

export interface WorkerProcess {
  proc: ChildProcess;
  output(): string;
  /** Resolves with the first match of `pattern` in the output (now or later); rejects after `timeoutMs` or on exit. */
  waitFor(pattern: RegExp, timeoutMs?: number): Promise<RegExpMatchArray>;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  signal(signal: NodeJS.Signals): void;
}

/** Starts the test worker (worker/test/fixtures/test-worker.ts) as a real process with `env`. */
export function startWorkerProcess(env: Record<string, string>): WorkerProcess {
  const proc = spawn(process.execPath, [TEST_WORKER], {
    env: { PATH: process.env.PATH ?? '', NO_COLOR: '1', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  const waiters = new Set<() => void>();
  const onData = (d: Buffer) => {
    output += d.toString();
    for (const w of [...waiters]) w();
  };
  proc.stdout!.on('data', onData);
  proc.stderr!.on('data', onData);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    proc.once('exit', (code, signal) => {
      for (const w of [...waiters]) w();
      resolve({ code, signal });
    }),
  );
  return {
    proc,
    output: () => output,
    exited,
    signal: (signal) => proc.kill(signal),
    waitFor(pattern, timeoutMs = 120_000) {
      return new Promise((resolve, reject) => {
        const check = () => {
          const match = pattern.exec(output);
          if (match) {
            finish();
            resolve(match);
          } else if (proc.exitCode !== null || proc.signalCode !== null) {
            finish();
            reject(new Error(`worker exited before printing ${pattern}:\n${output}`));
          }
        };
        const timer = setTimeout(() => {
          finish();
          reject(new Error(`worker did not print ${pattern} within ${timeoutMs} ms:\n${output}`));
        }, timeoutMs);
        const finish = () => {
          clearTimeout(timer);
          waiters.delete(check);
        };
        waiters.add(check);
        check();
      });
    },
  };
}
