import type { Pool, PoolClient } from 'pg';
import type { ClaimedJob, HeldLease, JobKind, Telemetry, WorkerActivity, WorkerCommand } from '@avatar-fleet/contracts';
import { Channels } from '../database/notify-listener';
import { CLAIM_BATCH_SQL, COMPLETE_AND_CLAIM_SQL, COMPLETE_BATCH_SQL, HEARTBEAT_BATCH_SQL, toClaimOutcome } from './batch-statements';
import { BACK_TO_QUEUE, backoff } from './sql-fragments';

/**
 * Queue semantics in SQL: claim, renew, progress, complete, fail, release (the reaper's statements
 * are in lease-expiry.repository.ts, the batched ones in batch-statements.ts). Every statement that
 * a worker's write triggers is fenced by (attempt, lease_token), and by the writing worker (`actor`,
 * the worker its token names; null for a legacy host) when there is one, and uses the database
 * clock only.
 * Each method takes a pool (one statement, its own commit) or a client inside a transaction.
 */

/** Anything that runs a query: the pool (autocommit) or a client inside a transaction. */
export type Queryable = Pool | PoolClient;

/** What a worker can run; claimers with equal capabilities are claimed for in one statement. */
export interface WorkerCaps {
  kinds: JobKind[];
  gpuClass: string | null;
  vramGb: number;
}

export interface Completion {
  jobId: string;
  attempt: number;
  leaseToken: string;
  result: object;
  /** The worker completing it (its token's), which must hold the job; null: the lease token alone decides (a legacy host). */
  workerId?: string | null;
}

/** A completion's effect: the job ended succeeded or cancelled, or (null) the completion was not applied. */
export type CompletionState = 'succeeded' | 'cancelled' | null;

function completionValues(completions: Completion[]): unknown[] {
  return [
    completions.map((c) => c.jobId),
    completions.map((c) => c.attempt),
    completions.map((c) => c.leaseToken),
    completions.map((c) => JSON.stringify(c.result)),
    completions.map((c) => c.workerId ?? null),
  ];
}

export type ClaimOutcome =
  | { kind: 'claimed'; job: ClaimedJob }
  | { kind: 'empty' }
  | { kind: 'draining' }
  | { kind: 'unknown_worker' }
  /** The worker re-registered with other capabilities than the ones the claim was grouped by. */
  | { kind: 'caps_changed' };

export type FenceOutcome = 'applied' | 'stale' | 'missing';

export type CompleteOutcome =
  | { kind: 'duplicate' }
  | { kind: 'mismatch' }
  | { kind: 'stale' | 'missing' };

export type FailOutcome = { kind: 'applied'; state: 'queued' | 'failed' | 'cancelled' } | { kind: 'stale' | 'missing' };

/** One worker's heartbeat, as the repository takes it. */
export interface Heartbeat {
  workerId: string;
  activity: WorkerActivity;
  leases: HeldLease[];
  telemetry?: Telemetry;
  executionProvider?: string;
}

export interface HeartbeatOutcome {
  command: WorkerCommand | null;
  /** Seconds since the previous heartbeat. */
  lagSec: number;
  renewed: { id: string; cancelRequested: boolean; leaseExpiresAt: Date }[];
  /** When a lease renewed by this beat expires, by the database's clock (for a beat that renewed none). */
  freshLeaseExpiresAt: Date;
  wasOffline: boolean;
}

export class LeaseRepository {
  /**
   * One statement claims for many claimers that share capabilities (`caps`): it locks the best
   * `n` claimable jobs with SKIP LOCKED and leases one to each eligible claimer.
   * Claimers are answered in the order given; a worker may appear more than once (slots).
   */
  async claimBatch(db: Queryable, caps: WorkerCaps, workerIds: string[], leaseTtlSec: number): Promise<ClaimOutcome[]> {
    const { rows } = await db.query({
      name: 'claim-batch',
      text: CLAIM_BATCH_SQL,
      values: [workerIds, caps.kinds, caps.gpuClass, caps.vramGb, leaseTtlSec],
    });
    return rows.map(toClaimOutcome);
  }

  /** What a claimer can run, as the workers table has it. */
  async workerCaps(db: Queryable, workerId: string): Promise<WorkerCaps | null> {
    const { rows } = await db.query({
      name: 'worker-caps',
      text: `SELECT kinds, gpu_class, coalesce(vram_gb, 0) AS vram_gb FROM workers WHERE id = $1`,
      values: [workerId],
    });
    return rows[0] ? { kinds: rows[0].kinds, gpuClass: rows[0].gpu_class, vramGb: rows[0].vram_gb } : null;
  }

  /**
   * Records liveness for each beat and extends the leases it lists, if they are still its worker's.
   * Answers per beat, in order; null for a worker that is not registered (or has stopped).
   */
  async heartbeatBatch(db: Queryable, beats: Heartbeat[], leaseTtlSec: number): Promise<(HeartbeatOutcome | null)[]> {
    const held = beats.flatMap((b, i) => b.leases.map((l) => ({ beat: i + 1, ...l })));
    const { rows } = await db.query({
      name: 'heartbeat-batch',
      text: HEARTBEAT_BATCH_SQL,
      values: [
        beats.map((b) => b.workerId),
        beats.map((b) => b.activity),
        beats.map((b) => (b.telemetry ? JSON.stringify(b.telemetry) : null)),
        beats.map((b) => b.executionProvider ?? null),
        held.map((h) => h.beat),
        held.map((h) => h.jobId),
        held.map((h) => h.attempt),
        held.map((h) => h.leaseToken),
        leaseTtlSec,
      ],
    });
    const outcomes: (HeartbeatOutcome | null)[] = beats.map(() => null);
    for (const row of rows) {
      outcomes[Number(row.ord) - 1] = {
        command: row.command,
        lagSec: row.lag_sec,
        wasOffline: row.old_state === 'offline',
        freshLeaseExpiresAt: row.fresh_lease_expires_at,
        renewed: (row.renewed as { id: string; cancelRequested: boolean; leaseExpiresAt: string }[]).map((r) => ({
          ...r,
          leaseExpiresAt: new Date(r.leaseExpiresAt),
        })),
      };
    }
    return outcomes;
  }

  /** Stores progress (only a newer sequence) and extends the lease: a reporting worker is alive. */
  async progress(
    db: Queryable,
    jobId: string,
    fence: { attempt: number; leaseToken: string },
    report: { stage: string; fraction: number; sequence: number; message?: string },
    leaseTtlSec: number,
    actor: string | null,
  ): Promise<{ cancelRequested: boolean; leaseExpiresAt: Date } | 'stale' | 'missing'> {
    const { rows } = await db.query({
      name: 'progress',
      text: `
      UPDATE jobs SET
        progress = CASE WHEN coalesce((progress ->> 'sequence')::bigint, -1) < $4 THEN
          jsonb_build_object('stage', $5::text, 'fraction', $6::float8, 'sequence', $4::bigint, 'message', $7::text, 'updatedAt', now())
          ELSE progress END,
        lease_expires_at = greatest(lease_expires_at, now() + make_interval(secs => $8)), updated_at = now()
      WHERE id = $1 AND attempt = $2 AND lease_token = $3 AND state = 'running' AND ($9::text IS NULL OR worker_id = $9)
      RETURNING cancel_requested, lease_expires_at`,
      values: [jobId, fence.attempt, fence.leaseToken, report.sequence, report.stage, report.fraction, report.message ?? null, leaseTtlSec, actor],
    });
    if (rows[0]) return { cancelRequested: rows[0].cancel_requested, leaseExpiresAt: rows[0].lease_expires_at };
    return this.classifyStale(db, jobId);
  }

  /** A fenced no-op write: tells the worker whether its attempt is still the current one. */
  async confirmRunning(db: Queryable, jobId: string, fence: { attempt: number; leaseToken: string }, actor: string | null): Promise<FenceOutcome> {
    const { rowCount } = await db.query({
      name: 'confirm-running',
      text: `SELECT 1 FROM jobs WHERE id = $1 AND attempt = $2 AND lease_token = $3 AND state = 'running' AND ($4::text IS NULL OR worker_id = $4)`,
      values: [jobId, fence.attempt, fence.leaseToken, actor],
    });
    return rowCount ? 'applied' : this.classifyStale(db, jobId);
  }

  /**
   * One statement applies many completions (see COMPLETE_BATCH_SQL). Completions it could not apply
   * come back as null: ask completionOutcome() why (a repeat, a mismatch, a stale attempt).
   */
  async completeBatch(db: Queryable, completions: Completion[]): Promise<CompletionState[]> {
    const { rows } = await db.query({ name: 'complete-batch', text: COMPLETE_BATCH_SQL, values: completionValues(completions) });
    const outcomes: CompletionState[] = completions.map(() => null);
    for (const row of rows) outcomes[Number(row.ord) - 1] = row.state;
    return outcomes;
  }

  /**
   * Completions whose workers claim their next job in the same statement (all sharing `caps`).
   * The claim is made only for a completion that succeeded; otherwise it is null.
   */
  async completeAndClaimBatch(
    db: Queryable,
    caps: WorkerCaps,
    completions: (Completion & { workerId: string })[],
    leaseTtlSec: number,
  ): Promise<{ completed: CompletionState; claim: ClaimOutcome | null }[]> {
    const { rows } = await db.query({
      name: 'complete-and-claim',
      text: COMPLETE_AND_CLAIM_SQL,
      values: [...completionValues(completions), caps.kinds, caps.gpuClass, caps.vramGb, leaseTtlSec],
    });
    return rows.map((row) => ({ completed: row.completed, claim: row.completed === 'succeeded' ? toClaimOutcome(row) : null }));
  }

  /**
   * The job that the worker's accepted completion of `completed` leased to it in the same statement
   * (claimNext), if it still holds it. Claims made so record the completed attempt's lease token,
   * so each slot of a multi-slot worker gets back its own next job, never another slot's. Lets a
   * retried request whose first answer was lost receive the same next job instead of stranding it
   * until its lease expires.
   */
  async leasedWithCompletion(db: Queryable, workerId: string, completed: { leaseToken: string }): Promise<ClaimOutcome | null> {
    const { rows } = await db.query({
      name: 'leased-with-completion',
      text: `SELECT 'online' AS worker_state, id, kind, input, priority, attempt, lease_token, lease_expires_at, deadline_at, timeout_sec,
               owner
             FROM jobs WHERE worker_id = $1 AND lease_expires_at IS NOT NULL AND state = 'running' AND prior_lease_token = $2`,
      values: [workerId, completed.leaseToken],
    });
    return rows[0] ? toClaimOutcome(rows[0]) : null;
  }

  /** Why a completion was not applied: a repeat of the accepted one, a different result, or a stale attempt. */
  async completionOutcome(db: Queryable, c: Completion): Promise<CompleteOutcome> {
    const prior = await db.query({
      name: 'complete-prior',
      text: `SELECT a.result = $4::jsonb AS same FROM jobs j
             JOIN job_attempts a ON a.job_id = j.id AND a.attempt = j.attempt
             WHERE j.id = $1 AND j.attempt = $2 AND j.lease_token = $3 AND j.state = 'succeeded'`,
      values: [c.jobId, c.attempt, c.leaseToken, JSON.stringify(c.result)],
    });
    if (prior.rows[0]) return { kind: prior.rows[0].same ? 'duplicate' : 'mismatch' };
    return { kind: await this.classifyStale(db, c.jobId) };
  }

  /** A reported failure: back to the queue with backoff if retryable and attempts remain, else failed. */
  async fail(
    db: Queryable,
    jobId: string,
    fence: { attempt: number; leaseToken: string },
    error: { code: string; message: string; retryable: boolean },
    actor: string | null,
  ): Promise<FailOutcome> {
    const { rows } = await db.query({
      name: 'fail',
      text: `
      WITH held AS (
        SELECT id, attempt, worker_id, lease_token, started_at FROM jobs
        WHERE id = $1 AND attempt = $2 AND lease_token = $3 AND state = 'running' AND ($7::text IS NULL OR worker_id = $7) FOR UPDATE
      ), done AS (
        UPDATE jobs SET
          attempts_used = attempts_used + 1,
          state = CASE WHEN cancel_requested THEN 'cancelled'
                       WHEN $4 AND attempts_used + 1 < max_attempts THEN 'queued' ELSE 'failed' END,
          error_code = CASE WHEN cancel_requested THEN 'cancelled'
                            WHEN $4 AND attempts_used + 1 >= max_attempts THEN 'attempts_exhausted' ELSE $5 END,
          error_message = CASE WHEN cancel_requested THEN 'cancelled on request'
                               WHEN $4 AND attempts_used + 1 >= max_attempts
                                 THEN format('failed %s of %s attempts; last error %s: %s', attempts_used + 1, max_attempts, $5::text, $6::text)
                               ELSE $6 END,
          run_after = CASE WHEN NOT cancel_requested AND $4 AND attempts_used + 1 < max_attempts THEN now() + ${backoff('attempts_used')} ELSE run_after END,
          finished_at = CASE WHEN cancel_requested OR NOT $4 OR attempts_used + 1 >= max_attempts THEN now() END,
          ${BACK_TO_QUEUE}, updated_at = now()
        FROM held WHERE jobs.id = held.id
        RETURNING jobs.id, jobs.state, held.attempt, held.worker_id, held.lease_token, held.started_at
      ), logged AS (
        INSERT INTO job_attempts (job_id, attempt, worker_id, lease_token, claimed_at, ended_at, outcome, error_code, error_message)
        SELECT id, attempt, worker_id, lease_token, started_at, now(), CASE state WHEN 'queued' THEN 'retrying' ELSE state END, $5, $6
        FROM done
      )
      SELECT state, CASE WHEN state <> 'queued' THEN pg_notify('${Channels.jobFinished}', id::text) END FROM done`,
      values: [jobId, fence.attempt, fence.leaseToken, error.retryable, error.code, error.message, actor],
    });
    if (rows[0]) return { kind: 'applied', state: rows[0].state };
    return { kind: await this.classifyStale(db, jobId) } as { kind: 'stale' | 'missing' };
  }

  /**
   * Gives a worker's running jobs back at once. What it costs the job depends on why (`charge`):
   * - `restart`: the worker registered again under its fixed id, so the process that ran the job
   *   died; a lease loss, backed off and capped by MAX_LEASE_LOSSES like an expiry;
   * - `stop`: the worker stopped gracefully (deregister); counted in `releases`, backed off and
   *   capped by MAX_RELEASES, so a job cannot bounce between stopping workers forever;
   * - `none`: a claim whose HTTP answer never reached the worker; the job did nothing wrong.
   * `cap` is the limit for the charge. Returns the released job ids.
   */
  async release(db: Queryable, workerId: string, charge: { kind: 'restart' | 'stop' | 'none'; cap: number }, onlyJob?: { id: string; attempt: number; leaseToken: string }): Promise<string[]> {
    const { rows } = await db.query({
      name: 'release',
      text: `
      WITH held AS (
        SELECT id, attempt, worker_id, lease_token, started_at,
          CASE $5 WHEN 'restart' THEN lease_losses + 1 >= $6 WHEN 'stop' THEN releases + 1 >= $6 ELSE false END AS capped
        FROM jobs
        WHERE lease_expires_at IS NOT NULL AND state = 'running' AND worker_id = $1
          AND ($2::uuid IS NULL OR (id = $2 AND attempt = $3 AND lease_token = $4))
        FOR UPDATE
      ), done AS (
        UPDATE jobs SET state = CASE WHEN cancel_requested THEN 'cancelled' WHEN held.capped THEN 'failed' ELSE 'queued' END,
          lease_losses = lease_losses + CASE WHEN $5 = 'restart' THEN 1 ELSE 0 END,
          releases = releases + CASE WHEN $5 = 'stop' THEN 1 ELSE 0 END,
          finished_at = CASE WHEN cancel_requested OR held.capped THEN now() END,
          error_code = CASE WHEN cancel_requested THEN 'cancelled'
            WHEN held.capped THEN CASE $5 WHEN 'restart' THEN 'too_many_lease_losses' ELSE 'too_many_releases' END
            WHEN $5 = 'restart' THEN 'lease_lost' ELSE error_code END,
          error_message = CASE WHEN cancel_requested THEN 'cancelled on request'
            WHEN held.capped AND $5 = 'restart' THEN format('lost its worker %s times (the job may be killing its workers; the last one restarted while running it)', lease_losses + 1)
            WHEN held.capped THEN format('handed back by stopping workers %s times', releases + 1)
            WHEN $5 = 'restart' THEN format('worker %s restarted while running it', held.worker_id)
            ELSE error_message END,
          run_after = CASE $5 WHEN 'restart' THEN now() + ${backoff('lease_losses')} WHEN 'stop' THEN now() + ${backoff('releases')} ELSE now() END,
          ${BACK_TO_QUEUE}, updated_at = now()
        FROM held WHERE jobs.id = held.id
        RETURNING jobs.id, jobs.kind, jobs.state, held.attempt, held.worker_id, held.lease_token, held.started_at
      ), logged AS (
        INSERT INTO job_attempts (job_id, attempt, worker_id, lease_token, claimed_at, ended_at, outcome)
        SELECT id, attempt, worker_id, lease_token, started_at, now(),
          CASE WHEN state = 'cancelled' THEN 'cancelled' WHEN $5 = 'restart' THEN 'lease_lost' ELSE 'released' END
        FROM done
      )
      SELECT id, pg_notify(CASE state WHEN 'queued' THEN '${Channels.jobsQueued}' ELSE '${Channels.jobFinished}' END,
                           CASE state WHEN 'queued' THEN kind ELSE id::text END)
      FROM done`,
      values: [workerId, onlyJob?.id ?? null, onlyJob?.attempt ?? null, onlyJob?.leaseToken ?? null, charge.kind, charge.cap],
    });
    return rows.map((r) => r.id as string);
  }

  private async classifyStale(db: Queryable, jobId: string): Promise<'stale' | 'missing'> {
    const { rowCount } = await db.query({ name: 'job-exists', text: 'SELECT 1 FROM jobs WHERE id = $1', values: [jobId] });
    return rowCount ? 'stale' : 'missing';
  }
}
