import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { startOrchestratorProcess, type OrchestratorProcess } from '@avatar-fleet/orchestrator/dist/test/helpers/orchestrator-process';
import { Balancer } from './balancer';
import type { EventLog } from './events';

/**
 * The orchestrator replicas of a run, all on one database, behind one balancer URL. Replicas are
 * real processes (orchestrator/dist/src/main.js); one that exits without being told to is a crash,
 * which the run reports as a failure.
 */
export class Replicas {
  private readonly balancer = new Balancer();
  private readonly running: OrchestratorProcess[] = [];
  private readonly killed = new Set<OrchestratorProcess>();
  private readonly all: OrchestratorProcess[] = [];
  /** Output tails of replicas that exited on their own. */
  readonly crashes: string[] = [];
  /** Starts that did not come up in time (retried). */
  readonly startFailures: string[] = [];
  url = '';

  constructor(
    private readonly databaseUrl: string,
    private readonly env: Record<string, string>,
    private readonly log: EventLog,
    /** Where each replica's output is written when the run closes. */
    private readonly logDir: string,
  ) {}

  async open(count: number): Promise<string> {
    this.url = await this.balancer.listen();
    await this.start(count);
    return this.url;
  }

  /**
   * Starts `count` more replicas and puts them behind the balancer once they listen. A start that
   * fails is tried again, as a supervisor would, up to three times; each failure is kept for the summary.
   */
  async start(count: number): Promise<void> {
    for (let tries = 0; count > 0 && tries < 3; tries++) {
      const starts = await Promise.allSettled(Array.from({ length: count }, () => startOrchestratorProcess(this.databaseUrl, { LOG_LEVEL: 'warn', ...this.env })));
      for (const start of starts) {
        if (start.status === 'rejected') {
          this.startFailures.push(String((start.reason as Error).message).slice(0, 2_000));
          continue;
        }
        this.add(start.value);
        count--;
      }
    }
    this.balancer.setBackends(this.running.map((r) => r.url));
  }

  private add(replica: OrchestratorProcess): void {
    replica.proc.once('exit', (code, signal) => {
      if (!this.killed.has(replica)) this.crashes.push(`exit ${code ?? signal}:\n${replica.output().slice(-4_000)}`);
    });
    this.running.push(replica);
    this.all.push(replica);
    this.log.add({ type: 'orchestrator', at: Date.now(), action: 'started', url: replica.url });
  }

  /** SIGKILLs the oldest replica: no shutdown hooks, its connections reset, its parked claims gone. */
  async killOldest(): Promise<void> {
    const replica = this.running.shift();
    if (!replica) return;
    this.killed.add(replica);
    this.log.add({ type: 'orchestrator', at: Date.now(), action: 'killed', url: replica.url });
    await replica.kill();
    // As a health check would, after the fact: meanwhile new connections to it are refused and go elsewhere.
    this.balancer.setBackends(this.running.map((r) => r.url));
  }

  get count(): number {
    return this.running.length;
  }

  /** Connections the balancer gave each replica: how the load was split. */
  split(): Map<string, number> {
    return this.balancer.connections;
  }

  async close(): Promise<void> {
    for (const replica of this.running) this.killed.add(replica);
    await Promise.all(this.running.map((r) => r.stop()));
    await this.balancer.close();
    this.all.forEach((r, i) => writeFileSync(path.join(this.logDir, `orchestrator-${i + 1}.log`), r.output()));
  }
}
