import { fork, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import type { EventLog } from './events';
import type { FromHost, HostConfig, ToHost } from './worker-host';

const HOST_SCRIPT = path.join(__dirname, 'worker-host.js');

export type PoolOptions = Omit<HostConfig, 'prefix' | 'workers'> & {
  /** Simulated workers in all, spread as evenly as can be over `processes`. */
  workers: number;
  processes: number;
  /** Share of restarts after a kill that come back with the same worker ids (a fixed BUFFER_WORKER_ID). */
  sameIdsOnRestart: number;
};

interface Host {
  index: number;
  prefix: string;
  proc: ChildProcess;
  /** Killed, its replacement not started yet. */
  dead: boolean;
  exited: Promise<void>;
  replies: ((message: FromHost) => void)[];
}

/**
 * The simulator's worker processes, seen from the driver: starts them, SIGKILLs and restarts
 * them (so the fleet keeps its capacity), asks one to freeze a worker, and stops them all. Every
 * event a process sends lands in the run's event log.
 */
export class HostPool {
  private readonly hosts: Host[] = [];
  private generation = 0;
  /** Worker ids that registered and have not been drained or killed since. */
  readonly live = new Set<string>();

  constructor(
    private readonly options: PoolOptions,
    private readonly log: EventLog,
  ) {}

  /** Starts every process and waits until all their workers have registered. */
  async start(): Promise<void> {
    for (let i = 0; i < this.options.processes; i++) this.hosts.push(this.spawn(i, `h${i}`));
    const want = this.options.workers;
    const until = Date.now() + 120_000;
    while (this.live.size < want) {
      if (Date.now() > until) throw new Error(`only ${this.live.size} of ${want} simulated workers registered within 2 minutes`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /** SIGKILLs one process chosen at random and starts its replacement at once. */
  async killOne(): Promise<void> {
    const alive = this.hosts.filter((h) => !h.dead);
    const host = alive[Math.floor(Math.random() * alive.length)];
    if (!host) return;
    host.dead = true;
    this.log.add({ type: 'process_killed', at: Date.now(), prefix: host.prefix });
    host.proc.kill('SIGKILL');
    for (const id of this.live) if (id.startsWith(`${host.prefix}.`)) this.live.delete(id);
    await host.exited;
    const prefix = Math.random() < this.options.sameIdsOnRestart ? host.prefix : `h${host.index}g${++this.generation}`;
    this.hosts[host.index] = this.spawn(host.index, prefix);
  }

  /** Asks the processes, in random order, to freeze one of their busy workers; false when none had one. */
  async freezeOne(ms: number): Promise<boolean> {
    const alive = this.hosts.filter((h) => !h.dead).sort(() => Math.random() - 0.5);
    for (const host of alive) {
      const answer = await this.ask(host, { type: 'freeze', ms });
      if (answer?.type === 'froze' && answer.ok) return true;
    }
    return false;
  }

  /** Stops every process (its workers deregister), killing any that does not stop within 20 s. */
  async stop(): Promise<void> {
    await Promise.all(this.hosts.map(async (host) => {
      const timer = setTimeout(() => host.proc.kill('SIGKILL'), 20_000);
      await this.ask(host, { type: 'stop' });
      await host.exited;
      clearTimeout(timer);
    }));
  }

  private spawn(index: number, prefix: string): Host {
    const { processes, workers, sameIdsOnRestart: _s, ...shared } = this.options;
    const config: HostConfig = { ...shared, prefix, workers: Math.floor(workers / processes) + (index < workers % processes ? 1 : 0) };
    const proc = fork(HOST_SCRIPT, [JSON.stringify(config)], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    const host: Host = { index, prefix, proc, dead: false, replies: [], exited: new Promise((resolve) => proc.once('exit', () => resolve())) };
    proc.on('message', (message: FromHost) => {
      if (message.type !== 'event') {
        host.replies.shift()?.(message);
        return;
      }
      const event = message.event;
      this.log.add(event);
      if (event.type === 'registered') this.live.add(event.workerId);
      if (event.type === 'drained') this.live.delete(event.workerId);
    });
    // An IPC write to a process that was just killed fails; that is expected here.
    proc.on('error', () => undefined);
    return host;
  }

  /** Sends a request and resolves with the host's answer (they come in order), or null if the process is gone first. */
  private ask(host: Host, message: ToHost): Promise<FromHost | null> {
    return new Promise((resolve) => {
      if (host.proc.exitCode !== null || host.proc.signalCode !== null) return resolve(null);
      host.replies.push(resolve);
      void host.exited.then(() => resolve(null));
      host.proc.send(message, (error) => error && resolve(null));
    });
  }
}
