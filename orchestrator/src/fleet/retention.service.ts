import { Injectable, Logger, type BeforeApplicationShutdown, type OnApplicationBootstrap } from '@nestjs/common';
import { SchedulerRegistry } from '@nestjs/schedule';
import { PeriodicTask } from '../common/periodic-task';
import type { PoolClient } from 'pg';
import { OrchestratorConfig } from '../config/orchestrator.config';
import { Database } from '../database/database';

export interface PruneOutcome {
  jobs: number;
  workers: number;
  batches: number;
}

/**
 * Every PRUNE_INTERVAL_SEC: jobs that finished more than RETENTION_DAYS ago (their attempts go with
 * them: ON DELETE CASCADE) and workers stopped or offline that long are deleted, so the tables hold
 * weeks, not the fleet's whole history. PRUNE_BATCH rows per statement, each its own transaction, so
 * no delete holds row locks or builds WAL for long; a session advisory lock lets one replica prune
 * at a time. jobs_finished_idx finds the oldest finished jobs without reading the queue.
 */
@Injectable()
export class RetentionService implements OnApplicationBootstrap, BeforeApplicationShutdown {
  private readonly logger = new Logger(RetentionService.name);
  private readonly task: PeriodicTask;
  private stopping = false;

  constructor(
    private readonly config: OrchestratorConfig,
    private readonly db: Database,
    scheduler: SchedulerRegistry,
  ) {
    this.task = new PeriodicTask('retention', scheduler, this.logger, () => this.pruneOnce());
  }

  onApplicationBootstrap(): void {
    this.task.start(this.config.PRUNE_INTERVAL_SEC * 1000);
  }

  beforeApplicationShutdown(): Promise<void> {
    this.stopping = true;
    return this.task.stop();
  }

  /** One pass, batch after batch until nothing is left (or shutdown); null when another replica holds the lock. */
  async pruneOnce(): Promise<PruneOutcome | null> {
    const client = await this.db.pool.connect();
    try {
      const { rows } = await client.query(`SELECT pg_try_advisory_lock(hashtext('avatar-fleet.retention')) AS locked`);
      if (!rows[0].locked) return null;
      try {
        const started = performance.now();
        const outcome: PruneOutcome = { jobs: 0, workers: 0, batches: 0 };
        for (;;) {
          const deleted = await this.deleteBatch(client);
          if (deleted === 0 || this.stopping) break;
          outcome.jobs += deleted;
          outcome.batches++;
        }
        const workers = await client.query(
          `DELETE FROM workers WHERE state IN ('stopped', 'offline') AND last_heartbeat_at < now() - make_interval(days => $1)`,
          [this.config.RETENTION_DAYS],
        );
        outcome.workers = workers.rowCount ?? 0;
        if (outcome.jobs || outcome.workers) {
          const ms = Math.round(performance.now() - started);
          this.logger.log(`retention: deleted ${outcome.jobs} jobs in ${outcome.batches} batches and ${outcome.workers} workers older than ${this.config.RETENTION_DAYS} days, in ${ms} ms`);
        }
        return outcome;
      } finally {
        await client.query(`SELECT pg_advisory_unlock(hashtext('avatar-fleet.retention'))`);
      }
    } finally {
      client.release();
    }
  }

  /** The oldest PRUNE_BATCH finished jobs past retention; rows another statement holds are left for later. */
  private async deleteBatch(client: PoolClient): Promise<number> {
    const result = await client.query(
      `DELETE FROM jobs WHERE id IN (
         SELECT id FROM jobs WHERE finished_at < now() - make_interval(days => $1)
         ORDER BY finished_at LIMIT $2 FOR UPDATE SKIP LOCKED)`,
      [this.config.RETENTION_DAYS, this.config.PRUNE_BATCH],
    );
    return result.rowCount ?? 0;
  }
}
