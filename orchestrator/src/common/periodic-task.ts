import type { Logger } from '@nestjs/common';
import type { SchedulerRegistry } from '@nestjs/schedule';

/**
 * A background pass run every `intervalMs` under a name in Nest's scheduler: a tick is skipped
 * while the previous pass still runs, a failed pass is logged, not thrown, and stop() waits for
 * the pass in flight, since the database pools close right after shutdown.
 */
export class PeriodicTask {
  private running: Promise<void> | null = null;

  constructor(
    private readonly name: string,
    private readonly scheduler: SchedulerRegistry,
    private readonly logger: Logger,
    private readonly pass: () => Promise<unknown>,
  ) {}

  start(intervalMs: number): void {
    const timer = setInterval(() => void this.tick(), intervalMs);
    timer.unref();
    this.scheduler.addInterval(this.name, timer);
  }

  async stop(): Promise<void> {
    if (this.scheduler.doesExist('interval', this.name)) this.scheduler.deleteInterval(this.name);
    await this.running;
  }

  private async tick(): Promise<void> {
    if (this.running) return;
    this.running = this.pass().then(
      () => undefined,
      (error: Error) => this.logger.warn(`${this.name} pass failed: ${error.message}`),
    );
    try {
      await this.running;
    } finally {
      this.running = null;
    }
  }
}
