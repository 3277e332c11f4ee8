import type { OperatorClient } from '@avatar-fleet/contracts';
import type { EventLog } from './events';
import type { HostPool } from './host-pool';
import type { Replicas } from './replicas';
import type { Disruption, ScenarioOptions } from './scenario';

const PRINT_EVERY_MS = 10_000;

/**
 * What goes wrong during a run, driven by the run's progress (the share of jobs ended) rather
 * than by the clock, so a slower machine sees the same story: worker deaths and drains at random
 * rates until `quietAfter`, and the scenario's disruptions in order, one at a time.
 */
export class ChaosMonkey {
  kills = 0;
  freezes = 0;
  drains = 0;
  disruptions = 0;
  private readonly pending = new Set<Promise<unknown>>();
  private nextDisruption = 0;
  private disrupting = false;
  private lastTick = Date.now();
  private lastPrint = Date.now();
  private readonly started = Date.now();

  constructor(
    private readonly o: ScenarioOptions,
    private readonly hosts: HostPool,
    private readonly replicas: Replicas,
    private readonly database: { restart(mode: 'immediate'): Promise<void> },
    /** Drains workers, as an operator would. */
    private readonly ops: OperatorClient,
    private readonly log: EventLog,
  ) {}

  /** Called about four times a second with the share of jobs ended and the counts by state. */
  tick(ended: number, states: Record<string, number>): void {
    const now = Date.now();
    const minutes = (now - this.lastTick) / 60_000;
    this.lastTick = now;
    const disruption = this.o.disruptions[this.nextDisruption];
    if (disruption && !this.disrupting && ended >= disruption.at) {
      this.nextDisruption++;
      this.disrupting = true;
      this.track(this.disrupt(disruption).finally(() => (this.disrupting = false)));
    }
    if (ended < this.o.quietAfter) {
      // Stochastic rounding: the expected number of deaths in this tick is rate * elapsed time.
      for (let n = Math.floor(this.o.killsPerMinute * minutes + Math.random()); n > 0; n--) {
        this.track(Math.random() < this.o.freezeShare ? this.freeze() : this.kill());
      }
      if (Math.random() < this.o.drainsPerMinute * minutes) this.track(this.drain());
    }
    if (now - this.lastPrint >= PRINT_EVERY_MS) {
      this.lastPrint = now;
      const counts = Object.entries(states).map(([s, n]) => `${s} ${n}`).join(', ');
      this.o.print(`sim: ${Math.round((now - this.started) / 1000)} s  ${counts}  kills ${this.kills} freezes ${this.freezes} drains ${this.drains} replicas ${this.replicas.count}`);
    }
  }

  /** Waits for every death, drain and disruption started so far to finish. */
  async settle(): Promise<void> {
    while (this.pending.size) await Promise.all([...this.pending]);
  }

  private track(work: Promise<unknown>): void {
    const tracked = work.catch((error: Error) => this.o.print(`sim: chaos step failed: ${error.message}`)).finally(() => this.pending.delete(tracked));
    this.pending.add(tracked);
  }

  private async disrupt(d: Disruption): Promise<void> {
    switch (d.kind) {
      case 'crash_orchestrator':
        this.o.print(`sim: SIGKILL an orchestrator replica, then start ${d.restartAs}`);
        await this.replicas.killOldest();
        await this.replicas.start(d.restartAs);
        break;
      case 'restart_postgres': {
        this.o.print('sim: restarting PostgreSQL (immediate shutdown)');
        const at = Date.now();
        await this.database.restart('immediate');
        this.log.add({ type: 'postgres_restarted', at, downMs: Date.now() - at });
        break;
      }
      case 'kill_worker_process':
        await this.kill();
        break;
      case 'freeze_worker':
        await this.freeze();
    }
    this.disruptions++;
  }

  private async kill(): Promise<void> {
    await this.hosts.killOne();
    this.kills++;
  }

  /** A busy worker somewhere stops beating for longer than a lease lives, then tries to report anyway. */
  private async freeze(): Promise<void> {
    const ms = (this.o.timing.leaseTtlSec + 2 * this.o.timing.heartbeatSec) * 1000;
    if (await this.hosts.freezeOne(ms)) this.freezes++;
  }

  /** An operator drains a live worker through the product API; it finishes its job and leaves. */
  private async drain(): Promise<void> {
    const live = [...this.hosts.live];
    const id = live[Math.floor(Math.random() * live.length)];
    if (!id) return;
    await this.ops.commandWorker(id, 'drain').catch(() => undefined);
    this.drains++;
  }
}
