import { Injectable, Logger, type OnModuleDestroy, type OnModuleInit } from '@nestjs/common';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { OrchestratorConfig } from '../config/orchestrator.config';
import { Database } from '../database/database';
import { JobRepository } from '../jobs/job.repository';
import { WorkerRepository } from '../fleet/worker.repository';

type JobCount = { kind: string; state: string; count: number };

/**
 * Prometheus metrics of this replica. Worker counts are read at scrape time (the workers table is
 * small); job counts come from a snapshot recounted every METRICS_REFRESH_SEC in the background,
 * since counting a table of millions of jobs takes hundreds of milliseconds and a scrape should not.
 */
@Injectable()
export class MetricsService implements OnModuleInit, OnModuleDestroy {
  private readonly logger = new Logger('Metrics');
  private jobCounts: { at: number; rows: JobCount[] } | undefined;
  private recount: Promise<void> | undefined;
  private timer: NodeJS.Timeout | undefined;
  readonly registry = new Registry();
  readonly claims = new Counter({ name: 'fleet_claims_total', help: 'Claim requests by outcome', labelNames: ['outcome'], registers: [this.registry] });
  readonly leaseLosses = new Counter({ name: 'fleet_lease_losses_total', help: 'Leases that expired and were taken back', registers: [this.registry] });
  readonly workerWrites = new Counter({ name: 'fleet_job_writes_total', help: 'Accepted and rejected worker writes', labelNames: ['kind', 'outcome'], registers: [this.registry] });
  readonly heartbeatLag = new Histogram({
    name: 'fleet_heartbeat_interval_seconds',
    help: 'Time between two heartbeats of one worker (the interval plus lag)',
    buckets: [1, 5, 9, 10, 11, 12, 15, 20, 30, 60],
    registers: [this.registry],
  });
  readonly requestDuration = new Histogram({
    name: 'fleet_http_request_duration_seconds',
    help: 'HTTP request latency by route (a long-poll includes its wait)',
    labelNames: ['method', 'route', 'status'],
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5, 30],
    registers: [this.registry],
  });
  readonly legacyRequests = new Counter({
    name: 'fleet_legacy_worker_requests_total',
    help: 'Worker calls made with the shared key by legacy hosts (no token of their own); zero means LEGACY_WORKERS=refuse is safe',
    registers: [this.registry],
  });
  readonly parkedClaims = new Gauge({ name: 'fleet_parked_claims', help: 'Long-poll claims waiting on this replica', registers: [this.registry] });

  constructor(
    private readonly db: Database,
    private readonly jobs: JobRepository,
    workers: WorkerRepository,
    private readonly config: OrchestratorConfig,
  ) {
    collectDefaultMetrics({ register: this.registry, prefix: 'fleet_process_' });
    const snapshot = () => this.snapshot();
    new Gauge({
      name: 'fleet_jobs',
      help: 'Jobs by kind and state, as of the last recount (fleet_jobs_snapshot_age_seconds)',
      labelNames: ['kind', 'state'],
      registers: [this.registry],
      async collect() {
        const counts = await snapshot();
        this.reset();
        for (const row of counts?.rows ?? []) this.set({ kind: row.kind, state: row.state }, row.count);
      },
    });
    new Gauge({
      name: 'fleet_jobs_snapshot_age_seconds',
      help: 'Age of the job counts in fleet_jobs',
      registers: [this.registry],
      async collect() {
        const counts = await snapshot();
        this.set(counts ? (Date.now() - counts.at) / 1000 : Number.NaN);
      },
    });
    new Gauge({
      name: 'fleet_workers',
      help: 'Registered workers by state',
      labelNames: ['state'],
      registers: [this.registry],
      async collect() {
        this.reset();
        for (const row of await workers.countByState(db.pool)) this.set({ state: row.state }, row.count);
      },
    });
  }

  onModuleInit(): void {
    void this.refresh(); // so that even the first scrape seldom waits
    this.timer = setInterval(() => void this.refresh(), this.config.METRICS_REFRESH_SEC * 1000);
    this.timer.unref();
  }

  onModuleDestroy(): void {
    clearInterval(this.timer);
  }

  /** The last job counts; only the first scrape (before any count) waits for one. */
  private async snapshot(): Promise<{ at: number; rows: JobCount[] } | undefined> {
    if (!this.jobCounts) await this.refresh();
    return this.jobCounts;
  }

  /** One recount at a time; a failed one keeps the previous counts (their age shows it). */
  private refresh(): Promise<void> {
    this.recount ??= this.jobs
      .depth(this.db.pool)
      .then((rows) => void (this.jobCounts = { at: Date.now(), rows }))
      .catch((error: unknown) => this.logger.warn(`job counts for /metrics not refreshed: ${(error as Error).message}`))
      .finally(() => (this.recount = undefined));
    return this.recount;
  }
}
