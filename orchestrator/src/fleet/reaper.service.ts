import { Injectable, Logger, type BeforeApplicationShutdown, type OnApplicationBootstrap } from '@nestjs/common';
import { SchedulerRegistry } from '@nestjs/schedule';
import { OrchestratorConfig } from '../config/orchestrator.config';
import { Database } from '../database/database';
import { LeaseExpiryRepository, type ReapOutcome } from '../leases/lease-expiry.repository';
import { MetricsService } from '../observability/metrics.service';

/**
 * Every REAPER_INTERVAL_MS: silent workers go offline, expired leases and timed-out attempts go
 * back to the queue (or fail for good), and claimers are told about jobs whose backoff ended.
 * It runs under a transaction-scoped advisory lock, so with several replicas one does the work per tick.
 */
@Injectable()
export class ReaperService implements OnApplicationBootstrap, BeforeApplicationShutdown {
  private readonly logger = new Logger(ReaperService.name);
  /** The tick in flight, if any: shutdown waits for it, since the pools close right after. */
  private running: Promise<void> | null = null;

  constructor(
    private readonly config: OrchestratorConfig,
    private readonly db: Database,
    private readonly leases: LeaseExpiryRepository,
    private readonly metrics: MetricsService,
    private readonly scheduler: SchedulerRegistry,
  ) {}

  onApplicationBootstrap(): void {
    const timer = setInterval(() => void this.tick(), this.config.REAPER_INTERVAL_MS);
    this.scheduler.addInterval('reaper', timer);
  }

  async beforeApplicationShutdown(): Promise<void> {
    if (this.scheduler.doesExist('interval', 'reaper')) this.scheduler.deleteInterval('reaper');
    await this.running;
  }

  private async tick(): Promise<void> {
    if (this.running) return;
    this.running = this.runOnce().then(
      () => undefined,
      (error: Error) => this.logger.warn(`reaper tick failed: ${error.message}`),
    );
    try {
      await this.running;
    } finally {
      this.running = null;
    }
  }

  /** One pass; null when another replica holds the lock. */
  async runOnce(): Promise<ReapOutcome | null> {
    const client = await this.db.pool.connect();
    try {
      await client.query('BEGIN');
      const { rows } = await client.query(`SELECT pg_try_advisory_xact_lock(hashtext('avatar-fleet.reaper')) AS locked`);
      if (!rows[0].locked) {
        await client.query('ROLLBACK');
        return null;
      }
      const outcome = await this.leases.reap(client, {
        heartbeatIntervalSec: this.config.HEARTBEAT_INTERVAL_SEC,
        offlineAfterIntervals: this.config.OFFLINE_AFTER_INTERVALS,
        maxLeaseLosses: this.config.MAX_LEASE_LOSSES,
      });
      await this.leases.announceMatured(client, this.config.REAPER_INTERVAL_MS * 3);
      await client.query('COMMIT');
      this.report(outcome);
      return outcome;
    } catch (error) {
      await client.query('ROLLBACK').catch(() => undefined);
      throw error;
    } finally {
      client.release();
    }
  }

  private report(outcome: ReapOutcome): void {
    if (outcome.offlineWorkers.length) this.logger.warn(`workers offline (no heartbeat): ${outcome.offlineWorkers.join(', ')}`);
    this.metrics.leaseLosses.inc(outcome.expired.length);
    for (const job of outcome.expired) this.logger.warn(`job ${job.id}: lease expired -> ${job.state}`);
    for (const job of outcome.timedOut) this.logger.warn(`job ${job.id}: attempt timed out -> ${job.state}`);
  }
}
