import { spawn, type ChildProcess } from 'node:child_process';

/**
 * Busy-loop processes that hold the CPU while a test runs, as a user's busy machine would: code
 * that only works when ffmpeg or a timer gets a core at once fails here, not on the user's machine.
 * Each hog leaves on its own if this process dies without stopping it (its parent becomes init).
 */
export function startCpuHogs(count = 2): { stop(): Promise<void> } {
  const parent = process.pid;
  const source = `for (let i = 0; ; i++) if (i % 50_000_000 === 0 && process.ppid !== ${parent}) process.exit(0);`;
  const hogs: ChildProcess[] = Array.from({ length: count }, () => spawn(process.execPath, ['-e', source], { stdio: 'ignore' }));
  const killAll = () => hogs.forEach((hog) => hog.kill('SIGKILL'));
  process.once('exit', killAll);
  return {
    async stop() {
      process.off('exit', killAll);
      await Promise.all(hogs.map((hog) => (hog.exitCode !== null || hog.signalCode !== null ? undefined : new Promise((resolve) => {
        hog.once('exit', resolve);
        hog.kill('SIGKILL');
      }))));
    },
  };
}
