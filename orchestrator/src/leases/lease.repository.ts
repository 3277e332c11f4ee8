import type { Pool, PoolClient } from 'pg';
import type { ClaimedJob, HeldLease, JobKind, Telemetry, WorkerActivity, WorkerCommand } from '@avatar-fleet/contracts';
import { Channels } from '../database/notify-listener';
import { BACKOFF, BACK_TO_QUEUE } from './sql-fragments';

/**
 * Queue semantics in SQL, in one place: claim, renew, progress, complete, fail, release, reap.
 * Every statement that a worker's write triggers is fenced by (attempt, lease_token) and uses the
 * database clock only. Each method takes the transaction's client; callers batch them (GroupCommit).
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

export interface HeartbeatOutcome {
  command: WorkerCommand | null;
  /** Seconds since the previous heartbeat. */
  lagSec: number;
  renewed: { id: string; cancelRequested: boolean; leaseExpiresAt: Date }[];
  wasOffline: boolean;
}


export class LeaseRepository {
  /**
   * One statement claims for many parked claimers that share capabilities (`caps`): it locks the
   * best `n` claimable jobs with SKIP LOCKED, leases one to each eligible claimer, and logs the
   * attempts. Claimers are answered in the order given; a worker may appear more than once (slots).
   */
  async claimBatch(db: Queryable, caps: WorkerCaps, workerIds: string[], leaseTtlSec: number): Promise<ClaimOutcome[]> {
    const { rows } = await db.query({
      name: 'claim-batch',
      text: `
      WITH req AS (
        SELECT worker_id, ord FROM unnest($1::text[]) WITH ORDINALITY AS r(worker_id, ord)
      ), claimers AS (
        SELECT req.worker_id, req.ord, row_number() OVER (ORDER BY req.ord) AS rn
        FROM req JOIN workers w ON w.id = req.worker_id
        WHERE w.state = 'online' AND w.command IS NULL AND w.kinds = $2::text[]
          AND w.gpu_class IS NOT DISTINCT FROM $3::text AND coalesce(w.vram_gb, 0) = $4::real
      ), picked AS (
        SELECT id, row_number() OVER () AS rn FROM (
          SELECT j.id FROM jobs j
          WHERE j.state = 'queued' AND j.run_after <= now() AND j.kind = ANY ($2::text[])
            AND (j.gpu_class IS NULL OR j.gpu_class = $3::text) AND j.min_vram_gb <= $4::real
          ORDER BY j.priority DESC, j.created_at, j.id
          LIMIT (SELECT count(*) FROM claimers)
          FOR UPDATE SKIP LOCKED
        ) s
      ), claimed AS (
        UPDATE jobs j SET state = 'running', attempt = j.attempt + 1, lease_token = gen_random_uuid(),
          lease_expires_at = now() + make_interval(secs => $5), worker_id = c.worker_id, started_at = now(),
          deadline_at = now() + make_interval(secs => j.timeout_sec), progress = NULL, updated_at = now()
        FROM picked p JOIN claimers c USING (rn)
        WHERE j.id = p.id
        RETURNING c.ord, j.id, j.kind, j.input, j.priority, j.attempt, j.lease_token, j.lease_expires_at, j.deadline_at, j.timeout_sec, j.worker_id
      ), logged AS (
        INSERT INTO job_attempts (job_id, attempt, worker_id, lease_token) SELECT id, attempt, worker_id, lease_token FROM claimed
      )
      SELECT req.ord, w.state, w.command, (c.ord IS NOT NULL) AS eligible, cl.id, cl.kind, cl.input, cl.priority, cl.attempt,
        cl.lease_token, cl.lease_expires_at, cl.deadline_at, cl.timeout_sec
      FROM req LEFT JOIN workers w ON w.id = req.worker_id LEFT JOIN claimers c ON c.ord = req.ord LEFT JOIN claimed cl ON cl.ord = req.ord
      ORDER BY req.ord`,
      values: [workerIds, caps.kinds, caps.gpuClass, caps.vramGb, leaseTtlSec],
    });
    return rows.map((row): ClaimOutcome => {
      if (row.id) {
        return {
          kind: 'claimed',
          job: {
            id: row.id,
            kind: row.kind as JobKind,
            input: row.input,
            priority: row.priority,
            attempt: row.attempt,
            leaseToken: row.lease_token,
            leaseExpiresAt: row.lease_expires_at.toISOString(),
            deadlineAt: row.deadline_at.toISOString(),
            timeoutSec: row.timeout_sec,
          },
        };
      }
      if (row.state !== 'online') return { kind: 'unknown_worker' };
      if (row.command) return { kind: 'draining' };
      return row.eligible ? { kind: 'empty' } : { kind: 'caps_changed' };
    });
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

  /** Records liveness and extends the leases the worker lists, if they are still its own. */
  async heartbeat(
    db: Queryable,
    workerId: string,
    report: { activity: WorkerActivity; leases: HeldLease[]; telemetry?: Telemetry; executionProvider?: string },
    leaseTtlSec: number,
  ): Promise<HeartbeatOutcome | null> {
    const { rows } = await db.query({
      name: 'heartbeat',
      text: `
      WITH w AS (
        UPDATE workers w SET last_heartbeat_at = now(), state = 'online', activity = $2, telemetry = $3::jsonb,
          execution_provider = coalesce($4, w.execution_provider)
        FROM (SELECT id, state, last_heartbeat_at FROM workers WHERE id = $1 AND state <> 'stopped') old
        WHERE w.id = old.id
        RETURNING w.command, old.state AS old_state, extract(epoch FROM now() - old.last_heartbeat_at)::float8 AS lag_sec
      ), held AS (
        SELECT * FROM unnest($5::uuid[], $6::int[], $7::uuid[]) AS h(job_id, attempt, lease_token)
      ), renewed AS (
        UPDATE jobs j SET lease_expires_at = greatest(j.lease_expires_at, now() + make_interval(secs => $8))
        FROM held
        WHERE j.id = ANY ($5::uuid[]) AND j.id = held.job_id AND j.attempt = held.attempt AND j.lease_token = held.lease_token
          AND j.state = 'running' AND j.worker_id = $1 AND EXISTS (SELECT 1 FROM w)
        RETURNING j.id, j.cancel_requested, j.lease_expires_at
      )
      SELECT w.command, w.old_state, w.lag_sec,
        coalesce((SELECT json_agg(json_build_object('id', id, 'cancelRequested', cancel_requested, 'leaseExpiresAt', lease_expires_at)) FROM renewed), '[]') AS renewed
      FROM w`,
      values: [
        workerId,
        report.activity,
        report.telemetry ? JSON.stringify(report.telemetry) : null,
        report.executionProvider ?? null,
        report.leases.map((l) => l.jobId),
        report.leases.map((l) => l.attempt),
        report.leases.map((l) => l.leaseToken),
        leaseTtlSec,
      ],
    });
    const row = rows[0];
    if (!row) return null;
    return {
      command: row.command,
      lagSec: row.lag_sec,
      wasOffline: row.old_state === 'offline',
      renewed: (row.renewed as { id: string; cancelRequested: boolean; leaseExpiresAt: string }[]).map((r) => ({
        ...r,
        leaseExpiresAt: new Date(r.leaseExpiresAt),
      })),
    };
  }

  /** Stores progress (only a newer sequence) and extends the lease: a reporting worker is alive. */
  async progress(
    db: Queryable,
    jobId: string,
    fence: { attempt: number; leaseToken: string },
    report: { stage: string; fraction: number; sequence: number; message?: string },
    leaseTtlSec: number,
  ): Promise<{ cancelRequested: boolean; leaseExpiresAt: Date } | 'stale' | 'missing'> {
    const { rows } = await db.query({
      name: 'progress',
      text: `
      UPDATE jobs SET
        progress = CASE WHEN coalesce((progress ->> 'sequence')::bigint, -1) < $4 THEN
          jsonb_build_object('stage', $5::text, 'fraction', $6::float8, 'sequence', $4::bigint, 'message', $7::text, 'updatedAt', now())
          ELSE progress END,
        lease_expires_at = greatest(lease_expires_at, now() + make_interval(secs => $8)), updated_at = now()
      WHERE id = $1 AND attempt = $2 AND lease_token = $3 AND state = 'running'
      RETURNING cancel_requested, lease_expires_at`,
      values: [jobId, fence.attempt, fence.leaseToken, report.sequence, report.stage, report.fraction, report.message ?? null, leaseTtlSec],
    });
    if (rows[0]) return { cancelRequested: rows[0].cancel_requested, leaseExpiresAt: rows[0].lease_expires_at };
    return this.classifyStale(db, jobId);
  }

  /** A fenced no-op write: tells the worker whether its attempt is still the current one. */
  async confirmRunning(db: Queryable, jobId: string, fence: { attempt: number; leaseToken: string }): Promise<FenceOutcome> {
    const { rowCount } = await db.query({
      name: 'confirm-running',
      text: `SELECT 1 FROM jobs WHERE id = $1 AND attempt = $2 AND lease_token = $3 AND state = 'running'`,
      values: [jobId, fence.attempt, fence.leaseToken],
    });
    return rowCount ? 'applied' : this.classifyStale(db, jobId);
  }

  /**
   * One statement applies many completions. The accepted completion publishes the result in the
   * same statement that ends the job; a cancellation requested meanwhile wins (the job ends
   * cancelled, the result is dropped). Completions it could not apply come back as null: ask
   * completionOutcome() why (a repeat, a mismatch, a stale attempt).
   */
  async completeBatch(db: Queryable, completions: Completion[]): Promise<('succeeded' | 'cancelled' | null)[]> {
    const { rows } = await db.query({
      name: 'complete-batch',
      text: `
      WITH req AS (
        SELECT * FROM unnest($1::uuid[], $2::int[], $3::uuid[], $4::jsonb[]) WITH ORDINALITY AS r(job_id, attempt, lease_token, result, ord)
      ), done AS (
        UPDATE jobs j SET
          state = CASE WHEN j.cancel_requested THEN 'cancelled' ELSE 'succeeded' END,
          result = CASE WHEN j.cancel_requested THEN NULL ELSE req.result END,
          error_code = CASE WHEN j.cancel_requested THEN 'cancelled' END,
          error_message = CASE WHEN j.cancel_requested THEN 'cancelled on request' END,
          lease_expires_at = NULL, deadline_at = NULL, finished_at = now(), updated_at = now()
        FROM req
        -- id = ANY(...) pins the plan to primary-key lookups; joining on req alone lets stale
        -- statistics pick a scan of every running job.
        WHERE j.id = ANY ($1::uuid[]) AND j.id = req.job_id AND j.attempt = req.attempt AND j.lease_token = req.lease_token
          AND j.state = 'running'
        RETURNING j.id, j.state, req.ord, req.attempt, req.result
      ), logged AS (
        UPDATE job_attempts a SET ended_at = now(), outcome = done.state, result = done.result
        FROM done WHERE a.job_id = done.id AND a.attempt = done.attempt
      ), notified AS (
        -- One notification per batch: the payload lists the finished job ids, comma-separated.
        SELECT pg_notify('${Channels.jobFinished}', string_agg(id::text, ',')) FROM done HAVING count(*) > 0
      )
      SELECT ord, state, (SELECT count(*) FROM notified) AS notified FROM done`,
      values: [
        completions.map((c) => c.jobId),
        completions.map((c) => c.attempt),
        completions.map((c) => c.leaseToken),
        completions.map((c) => JSON.stringify(c.result)),
      ],
    });
    const outcomes: ('succeeded' | 'cancelled' | null)[] = completions.map(() => null);
    for (const row of rows) outcomes[Number(row.ord) - 1] = row.state;
    return outcomes;
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
  ): Promise<FailOutcome> {
    const { rows } = await db.query({
      name: 'fail',
      text: `
      WITH done AS (
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
          run_after = CASE WHEN NOT cancel_requested AND $4 AND attempts_used + 1 < max_attempts THEN now() + ${BACKOFF} ELSE run_after END,
          finished_at = CASE WHEN cancel_requested OR NOT $4 OR attempts_used + 1 >= max_attempts THEN now() END,
          ${BACK_TO_QUEUE}, updated_at = now()
        WHERE id = $1 AND attempt = $2 AND lease_token = $3 AND state = 'running'
        RETURNING id, state
      ), logged AS (
        UPDATE job_attempts a SET ended_at = now(), error_code = $5, error_message = $6,
          outcome = CASE done.state WHEN 'queued' THEN 'retrying' ELSE done.state END
        FROM done WHERE a.job_id = done.id AND a.attempt = $2
      )
      SELECT state, CASE WHEN state <> 'queued' THEN pg_notify('${Channels.jobFinished}', id::text) END FROM done`,
      values: [jobId, fence.attempt, fence.leaseToken, error.retryable, error.code, error.message],
    });
    if (rows[0]) return { kind: 'applied', state: rows[0].state };
    return { kind: await this.classifyStale(db, jobId) } as { kind: 'stale' | 'missing' };
  }

  /**
   * Gives a worker's running jobs back at once, not charged against attempts (graceful stop,
   * or a claim whose HTTP answer never reached the worker). Returns the released job ids.
   */
  async release(db: Queryable, workerId: string, onlyJob?: { id: string; attempt: number; leaseToken: string }): Promise<string[]> {
    const { rows } = await db.query({
      name: 'release',
      text: `
      WITH done AS (
        UPDATE jobs SET state = CASE WHEN cancel_requested THEN 'cancelled' ELSE 'queued' END,
          finished_at = CASE WHEN cancel_requested THEN now() END,
          error_code = CASE WHEN cancel_requested THEN 'cancelled' ELSE error_code END,
          error_message = CASE WHEN cancel_requested THEN 'cancelled on request' ELSE error_message END,
          run_after = now(), ${BACK_TO_QUEUE}, updated_at = now()
        WHERE lease_expires_at IS NOT NULL AND state = 'running' AND worker_id = $1
          AND ($2::uuid IS NULL OR (id = $2 AND attempt = $3 AND lease_token = $4))
        RETURNING id, kind, state, attempt
      ), logged AS (
        UPDATE job_attempts a SET ended_at = now(), outcome = CASE done.state WHEN 'queued' THEN 'released' ELSE done.state END
        FROM done WHERE a.job_id = done.id AND a.attempt = done.attempt
      )
      SELECT id, pg_notify(CASE state WHEN 'queued' THEN '${Channels.jobsQueued}' ELSE '${Channels.jobFinished}' END,
                           CASE state WHEN 'queued' THEN kind ELSE id::text END)
      FROM done`,
      values: [workerId, onlyJob?.id ?? null, onlyJob?.attempt ?? null, onlyJob?.leaseToken ?? null],
    });
    return rows.map((r) => r.id as string);
  }

  private async classifyStale(db: Queryable, jobId: string): Promise<'stale' | 'missing'> {
    const { rowCount } = await db.query({ name: 'job-exists', text: 'SELECT 1 FROM jobs WHERE id = $1', values: [jobId] });
    return rowCount ? 'stale' : 'missing';
  }
}
