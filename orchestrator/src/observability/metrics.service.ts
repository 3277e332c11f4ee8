import { Injectable } from '@nestjs/common';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { Database } from '../database/database';
import { JobRepository } from '../jobs/job.repository';
import { WorkerRepository } from '../fleet/worker.repository';

/** Prometheus metrics of this replica; queue depth and worker counts are read from the database at scrape time. */
@Injectable()
export class MetricsService {
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
  readonly parkedClaims = new Gauge({ name: 'fleet_parked_claims', help: 'Long-poll claims waiting on this replica', registers: [this.registry] });

  constructor(db: Database, jobs: JobRepository, workers: WorkerRepository) {
    collectDefaultMetrics({ register: this.registry, prefix: 'fleet_process_' });
    new Gauge({
      name: 'fleet_jobs',
      help: 'Jobs by kind and state',
      labelNames: ['kind', 'state'],
      registers: [this.registry],
      async collect() {
        this.reset();
        for (const row of await jobs.depth(db.pool)) this.set({ kind: row.kind, state: row.state }, row.count);
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
}
