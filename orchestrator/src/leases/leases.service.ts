import { Injectable, Logger, type BeforeApplicationShutdown, type OnModuleInit } from '@nestjs/common';
import {
  ErrorCode, MAX_CLAIM_WAIT_MS, type ClaimedJob, type ProgressRequest, type ProgressResponse, type StatusRequest, type StatusResponse,
} from '@avatar-fleet/contracts';
import { ApiError } from '../common/api-error';
import { OrchestratorConfig } from '../config/orchestrator.config';
import { Coalescer } from '../database/coalescer';
import { Database } from '../database/database';
import { Channels } from '../database/notify-listener';
import { notRegistered } from '../fleet/worker-errors';
import { MetricsService } from '../observability/metrics.service';
import { ClaimWaiters } from './claim-waiters';
import { explainNoJob, pendingCommand } from './no-job-reason';
import {
  LeaseRepository, type ClaimOutcome, type CompleteOutcome, type Completion, type CompletionState, type WorkerCaps,
} from './lease.repository';

const MAX_CACHED_CAPS = 50_000;
/** A 204's reason is worked out once per capabilities in this window: idle fleets ask it constantly. */
const NO_JOB_REASON_MS = 5_000;
/** A claim whose answer never reached its worker goes back uncharged: the job did nothing wrong. */
const NO_CHARGE = { kind: 'none', cap: 0 } as const;

type ClaimRequest = { workerId: string; caps: WorkerCaps };
type CompletionResult = { kind: 'succeeded' | 'cancelled' } | CompleteOutcome;
type CompleteAndClaimRequest = Completion & ClaimRequest;
type CompleteAndClaimResult = { completion: CompletionResult; claim: ClaimOutcome | null };

/** Claims (long-poll), progress and status: every worker write about a job, fenced by its lease. */
@Injectable()
export class LeasesService implements OnModuleInit, BeforeApplicationShutdown {
  private readonly logger = new Logger(LeasesService.name);
  private readonly waiters = new ClaimWaiters();
  /** Set at shutdown: parked claims answer empty at once, so the HTTP server can close without waiting out their polls. */
  private closing = false;
  /**
   * Capabilities by worker id, to group claimers; the claim statement re-checks them against the
   * table. Bounded: the oldest entries go first, and a forgotten worker is simply looked up again.
   */
  private readonly caps = new Map<string, WorkerCaps>();
  private readonly noJobReasons = new Map<string, { at: number; text: string }>();
  private readonly claims = new Coalescer<ClaimRequest, ClaimOutcome>((batch) => this.claimBatch(batch), { maxBatch: 256, maxInFlight: 1 });
  // Batches that complete jobs stop at 200: that many ids fit in the one NOTIFY (8000 bytes) that lists them.
  private readonly completions = new Coalescer<Completion, CompletionResult>((batch) => this.completeBatch(batch), { maxBatch: 200, maxInFlight: 1 });
  private readonly completeAndClaims = new Coalescer<CompleteAndClaimRequest, CompleteAndClaimResult>(
    (batch) => this.completeAndClaimBatch(batch),
    { maxBatch: 200, maxInFlight: 1 },
  );

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

  beforeApplicationShutdown(): void {
    this.closing = true;
    this.waiters.wakeAll();
  }

  /** Called on registration, so the first claim needs no lookup. */
  rememberCaps(workerId: string, caps: WorkerCaps): void {
    this.caps.delete(workerId);
    this.caps.set(workerId, { ...caps, kinds: [...caps.kinds].sort() });
    if (this.caps.size > MAX_CACHED_CAPS) this.caps.delete(this.caps.keys().next().value!);
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
        const outcome = await this.claimOnce(workerId);
        if (outcome.kind === 'claimed') {
          if (signal.aborted) {
            await this.leases.release(this.db.pool, workerId, NO_CHARGE, outcome.job);
            this.metrics.claims.inc({ outcome: 'abandoned' });
            return null;
          }
          this.metrics.claims.inc({ outcome: 'claimed' });
          return outcome.job;
        }
        if (outcome.kind === 'unknown_worker' || outcome.kind === 'caps_changed') {
          this.metrics.claims.inc({ outcome: 'rejected' });
          throw notRegistered(workerId);
        }
        const remaining = deadline - Date.now();
        if (outcome.kind === 'draining' || remaining <= 0 || signal.aborted) {
          this.metrics.claims.inc({ outcome: 'empty' });
          return null;
        }
        if (!waiter) {
          // Register, then claim once more: a job committed before registration is found by that claim.
          waiter = this.waiters.register(this.caps.get(workerId)?.kinds ?? []);
          this.metrics.parkedClaims.set(this.waiters.size);
          continue;
        }
        const poll = this.config.CLAIM_POLL_MS * (0.75 + Math.random() * 0.5);
        await waiter.wait(Math.min(remaining, poll), signal);
        // A claimer that hung up gets no further claim: its request outlives its connection, and
        // at shutdown the pools may be closing once no connection is left.
        if (signal.aborted || this.closing) {
          this.metrics.claims.inc({ outcome: 'empty' });
          return null;
        }
      }
    } finally {
      waiter?.done();
      this.metrics.parkedClaims.set(this.waiters.size);
    }
  }

  /** Why the worker's claim found nothing (see explainNoJob), shared by workers of equal capabilities for a few seconds. */
  async whyNoJob(workerId: string): Promise<string> {
    const caps = await this.capsOf(workerId);
    if (!caps) return `worker ${workerId} is not registered`;
    const command = await pendingCommand(this.db.pool, workerId);
    if (command) return command;
    const key = JSON.stringify(caps);
    const cached = this.noJobReasons.get(key);
    if (cached && Date.now() - cached.at < NO_JOB_REASON_MS) return cached.text;
    const text = await explainNoJob(this.db.pool, caps);
    if (this.noJobReasons.size >= MAX_CACHED_CAPS) this.noJobReasons.clear();
    this.noJobReasons.set(key, { at: Date.now(), text });
    return text;
  }

  /** `actor`: the worker whose token sent it, which must hold the job; null for a legacy host (the lease token alone decides). */
  async progress(jobId: string, req: ProgressRequest, actor: string | null): Promise<ProgressResponse> {
    const outcome = await this.leases.progress(this.db.relaxed, jobId, req, req, this.config.LEASE_TTL_SEC, actor);
    if (outcome === 'stale' || outcome === 'missing') throw this.fenceError(jobId, outcome);
    return { cancelRequested: outcome.cancelRequested, leaseExpiresAt: outcome.leaseExpiresAt.toISOString() };
  }

  /** `actor` as for progress; a claimNext claims for `req.claimNext.workerId`, which the caller may act for. */
  async status(jobId: string, req: StatusRequest, signal: AbortSignal, actor: string | null): Promise<StatusResponse> {
    if (req.claimNext && req.status === 'running') {
      throw ApiError.validation([{ field: 'claimNext', problems: ['claimNext is allowed only with status completed or failed'] }]);
    }
    if (req.claimNext && req.status === 'completed') return this.completeAndClaimNext(jobId, req, signal, actor);
    const state = await this.finalStatus(jobId, req, actor);
    if (!req.claimNext) return { jobId, state };
    // The status is applied by now: a worker that cannot claim gets no next job, not a refusal of
    // what was accepted (as after a completion); it learns why from its next claim or heartbeat.
    const next = await this.claim(req.claimNext.workerId, req.claimNext.waitMs ?? 0, signal).catch((error: unknown) => {
      if (error instanceof ApiError && error.code === ErrorCode.WorkerNotRegistered) return null;
      throw error;
    });
    return { jobId, state, next };
  }

  /**
   * A completion that claims the worker's next job: one statement and one commit for both, when the
   * worker's capabilities are known. An empty queue then falls back to the long-poll claim.
   */
  private async completeAndClaimNext(jobId: string, req: StatusRequest, signal: AbortSignal, actor: string | null): Promise<StatusResponse> {
    const { workerId, waitMs = 0 } = req.claimNext!;
    const caps = await this.capsOf(workerId);
    if (!caps) {
      const state = await this.finalStatus(jobId, req, actor);
      return { jobId, state, next: null };
    }
    const { completion, claim } = await this.completeAndClaims.submit({
      jobId, attempt: req.attempt, leaseToken: req.leaseToken, result: req.result!, workerId, caps,
    });
    const state = this.settleCompletion(jobId, req.attempt, completion);
    if (completion.kind === 'duplicate') {
      // A retry whose first answer was lost: hand back the job that first call leased, if any.
      const earlier = await this.leases.leasedWithCompletion(this.db.pool, workerId, req);
      if (earlier?.kind === 'claimed') return { jobId, state, next: earlier.job };
    }
    if (claim?.kind === 'claimed') {
      if (signal.aborted) {
        await this.leases.release(this.db.pool, workerId, NO_CHARGE, claim.job);
        return { jobId, state, next: null };
      }
      this.metrics.claims.inc({ outcome: 'claimed' });
      return { jobId, state, next: claim.job };
    }
    // The completion was accepted either way: a worker that cannot claim learns why from its next claim.
    if (claim?.kind === 'draining' || claim?.kind === 'unknown_worker' || (claim?.kind === 'empty' && waitMs === 0)) {
      return { jobId, state, next: null };
    }
    return { jobId, state, next: await this.claim(workerId, waitMs, signal) };
  }

  private async finalStatus(jobId: string, req: StatusRequest, actor: string | null): Promise<string> {
    switch (req.status) {
      case 'running': {
        const outcome = await this.leases.confirmRunning(this.db.pool, jobId, req, actor);
        if (outcome === 'stale' || outcome === 'missing') throw this.fenceError(jobId, outcome);
        return 'running';
      }
      case 'completed': {
        const outcome = await this.completions.submit({ jobId, attempt: req.attempt, leaseToken: req.leaseToken, result: req.result!, workerId: actor });
        return this.settleCompletion(jobId, req.attempt, outcome);
      }
      case 'failed': {
        const outcome = await this.leases.fail(this.db.pool, jobId, req, req.error!, actor);
        this.metrics.workerWrites.inc({ kind: 'failed', outcome: outcome.kind });
        if (outcome.kind !== 'applied') throw this.fenceError(jobId, outcome.kind);
        return outcome.state;
      }
    }
  }

  /** The published state after a completion, or the 409 that explains why it was not applied. */
  private settleCompletion(jobId: string, attempt: number, outcome: CompletionResult): 'succeeded' {
    this.metrics.workerWrites.inc({ kind: 'completed', outcome: outcome.kind });
    switch (outcome.kind) {
      case 'succeeded':
      case 'duplicate':
        return 'succeeded';
      case 'cancelled':
        throw new ApiError(409, ErrorCode.JobCancelled, `job ${jobId} was cancelled; its result was not published`);
      case 'mismatch':
        throw new ApiError(409, ErrorCode.CompletionMismatch, `job ${jobId}: attempt ${attempt} already completed with a different result`);
      default:
        throw this.fenceError(jobId, outcome.kind);
    }
  }

  /** The worker's capabilities, from this replica's cache or the workers table; null for an unknown worker. */
  private async capsOf(workerId: string): Promise<WorkerCaps | null> {
    const cached = this.caps.get(workerId);
    if (cached) return cached;
    const loaded = await this.leases.workerCaps(this.db.pool, workerId);
    if (loaded) this.rememberCaps(workerId, loaded);
    return this.caps.get(workerId) ?? null;
  }

  private async claimOnce(workerId: string): Promise<ClaimOutcome> {
    for (let attempt = 0; attempt < 2; attempt++) {
      const caps = await this.capsOf(workerId);
      if (!caps) return { kind: 'unknown_worker' };
      const outcome = await this.claims.submit({ workerId, caps });
      if (outcome.kind !== 'caps_changed') return outcome;
      this.caps.delete(workerId);
    }
    return { kind: 'caps_changed' };
  }

  private claimBatch(batch: ClaimRequest[]): Promise<ClaimOutcome[]> {
    return byCaps(batch, (caps, group) =>
      this.leases.claimBatch(this.db.relaxed, caps, group.map((r) => r.workerId), this.config.LEASE_TTL_SEC),
    );
  }

  private async completeBatch(batch: Completion[]): Promise<CompletionResult[]> {
    const applied = await this.leases.completeBatch(this.db.pool, batch);
    return Promise.all(applied.map((state, i) => this.completionResult(state, batch[i]!)));
  }

  private completeAndClaimBatch(batch: CompleteAndClaimRequest[]): Promise<CompleteAndClaimResult[]> {
    return byCaps(batch, async (caps, group) => {
      const rows = await this.leases.completeAndClaimBatch(this.db.pool, caps, group, this.config.LEASE_TTL_SEC);
      return Promise.all(rows.map(async (row, i) => ({ completion: await this.completionResult(row.completed, group[i]!), claim: row.claim })));
    });
  }

  /** A completion not applied is classified (repeat, mismatch, stale) by a second look. */
  private async completionResult(state: CompletionState, completion: Completion): Promise<CompletionResult> {
    return state ? { kind: state } : this.leases.completionOutcome(this.db.pool, completion);
  }

  private fenceError(jobId: string, outcome: 'stale' | 'missing'): ApiError {
    if (outcome === 'missing') return ApiError.notFound(`job ${jobId}`);
    this.logger.debug(`stale write for job ${jobId} rejected`);
    return ApiError.staleLease(jobId);
  }
}

/** Runs `execute` once per group of requests with equal capabilities (one statement each), keeping request order. */
async function byCaps<Req extends { caps: WorkerCaps }, Res>(
  batch: Req[],
  execute: (caps: WorkerCaps, group: Req[]) => Promise<Res[]>,
): Promise<Res[]> {
  const groups = new Map<string, number[]>();
  batch.forEach((req, i) => {
    const key = JSON.stringify(req.caps);
    groups.set(key, [...(groups.get(key) ?? []), i]);
  });
  const results: Res[] = new Array(batch.length);
  await Promise.all(
    [...groups.values()].map(async (indexes) => {
      const group = indexes.map((i) => batch[i]!);
      const out = await execute(group[0]!.caps, group);
      indexes.forEach((i, k) => (results[i] = out[k]!));
    }),
  );
  return results;
}
