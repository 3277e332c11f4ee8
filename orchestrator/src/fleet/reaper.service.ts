import { Injectable, Logger, type BeforeApplicationShutdown, type OnApplicationBootstrap } from '@nestjs/common';
import { SchedulerRegistry } from '@nestjs/schedule';
import { PeriodicTask } from '../common/periodic-task';
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
  private readonly task: PeriodicTask;

  constructor(
    private readonly config: OrchestratorConfig,
    private readonly db: Database,
    private readonly leases: LeaseExpiryRepository,
    private readonly metrics: MetricsService,
    scheduler: SchedulerRegistry,
  ) {
    this.task = new PeriodicTask('reaper', scheduler, this.logger, () => this.runOnce());
  }

  onApplicationBootstrap(): void {
    this.task.start(this.config.REAPER_INTERVAL_MS);
  }

  beforeApplicationShutdown(): Promise<void> {
    return this.task.stop();
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
