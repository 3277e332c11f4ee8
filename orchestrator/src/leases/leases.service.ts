import { Injectable, Logger, type OnModuleInit } from '@nestjs/common';
import {
  ErrorCode, MAX_CLAIM_WAIT_MS, type ClaimedJob, type ProgressRequest, type ProgressResponse, type StatusRequest, type StatusResponse,
} from '@avatar-fleet/contracts';
import { ApiError } from '../common/api-error';
import { OrchestratorConfig } from '../config/orchestrator.config';
import { Database } from '../database/database';
import { Channels } from '../database/notify-listener';
import { MetricsService } from '../observability/metrics.service';
import { ClaimWaiters } from './claim-waiters';
import { LeaseRepository, type FenceOutcome } from './lease.repository';

/** Claims (long-poll), progress and status: every worker write about a job, fenced by its lease. */
@Injectable()
export class LeasesService implements OnModuleInit {
  private readonly logger = new Logger(LeasesService.name);
  private readonly waiters = new ClaimWaiters();

  constructor(
    private readonly config: OrchestratorConfig,
    private readonly db: Database,
    private readonly leases: LeaseRepository,
    private readonly metrics: MetricsService,
  ) {}

  onModuleInit(): void {
    this.db.listener.on(Channels.jobsQueued, (kind) => this.waiters.wake(kind));
    this.db.listener.onReconnect(() => this.waiters.wakeAll());
  }

  /**
   * Claims a job for the worker, parking up to `waitMs` when none is claimable. If the worker hung
   * up while parked, a job claimed for it is released at once rather than left to its lease expiry.
   */
  async claim(workerId: string, waitMs: number, signal: AbortSignal): Promise<ClaimedJob | null> {
    const deadline = Date.now() + Math.min(waitMs, MAX_CLAIM_WAIT_MS);
    let waiter: ReturnType<ClaimWaiters['register']> | null = null;
    try {
      for (;;) {
        const outcome = await this.db.tx.run((c) => this.leases.claim(c, workerId, this.config.LEASE_TTL_SEC));
        if (outcome.kind === 'claimed') {
          if (signal.aborted) {
            await this.db.tx.run((c) => this.leases.release(c, workerId, outcome.job));
            this.metrics.claims.inc({ outcome: 'abandoned' });
            return null;
          }
          this.metrics.claims.inc({ outcome: 'claimed' });
          // Another parked claimer may be able to take the next job right away.
          this.waiters.wake(outcome.job.kind);
          return outcome.job;
        }
        if (outcome.kind === 'unknown_worker') {
          this.metrics.claims.inc({ outcome: 'rejected' });
          throw new ApiError(409, ErrorCode.WorkerNotRegistered, `worker ${workerId} is not registered or not online; register again`);
        }
        const remaining = deadline - Date.now();
        if (outcome.kind === 'draining' || remaining <= 0 || signal.aborted) {
          this.metrics.claims.inc({ outcome: 'empty' });
          return null;
        }
        if (!waiter) {
          // Register, then claim once more: a job committed before registration is found by that claim.
          waiter = this.waiters.register(outcome.workerKinds);
          this.metrics.parkedClaims.set(this.waiters.size);
          continue;
        }
        const poll = this.config.CLAIM_POLL_MS * (0.75 + Math.random() * 0.5);
        await waiter.wait(Math.min(remaining, poll), signal);
      }
    } finally {
      waiter?.done();
      this.metrics.parkedClaims.set(this.waiters.size);
    }
  }

  async progress(jobId: string, req: ProgressRequest): Promise<ProgressResponse> {
    const outcome = await this.db.tx.run((c) => this.leases.progress(c, jobId, req, req, this.config.LEASE_TTL_SEC));
    if (typeof outcome === 'string') throw this.fenceError(jobId, outcome);
    return { cancelRequested: outcome.cancelRequested, leaseExpiresAt: outcome.leaseExpiresAt.toISOString() };
  }

  async status(jobId: string, req: StatusRequest): Promise<StatusResponse> {
    switch (req.status) {
      case 'running': {
        const outcome = await this.db.tx.run((c) => this.leases.confirmRunning(c, jobId, req));
        if (outcome === 'stale' || outcome === 'missing') throw this.fenceError(jobId, outcome);
        return { jobId, state: 'running' };
      }
      case 'completed': {
        const outcome = await this.db.tx.run((c) => this.leases.complete(c, jobId, req, req.result!));
        this.metrics.finished.inc({ kind: 'completed', outcome: outcome.kind });
        switch (outcome.kind) {
          case 'succeeded':
          case 'duplicate':
            return { jobId, state: 'succeeded' };
          case 'cancelled':
            throw new ApiError(409, ErrorCode.JobCancelled, `job ${jobId} was cancelled; its result was not published`);
          case 'mismatch':
            throw new ApiError(409, ErrorCode.CompletionMismatch, `job ${jobId}: attempt ${req.attempt} already completed with a different result`);
          default:
            throw this.fenceError(jobId, outcome.kind);
        }
      }
      case 'failed': {
        const outcome = await this.db.tx.run((c) => this.leases.fail(c, jobId, req, req.error!));
        this.metrics.finished.inc({ kind: 'failed', outcome: outcome.kind });
        if (outcome.kind !== 'applied') throw this.fenceError(jobId, outcome.kind);
        return { jobId, state: outcome.state };
      }
    }
  }

  private fenceError(jobId: string, outcome: Exclude<FenceOutcome, 'applied'>): ApiError {
    if (outcome === 'missing') return ApiError.notFound(`job ${jobId}`);
    this.logger.debug(`stale write for job ${jobId} rejected`);
    return ApiError.staleLease(jobId);
  }
}
