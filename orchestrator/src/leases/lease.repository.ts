import type { PoolClient } from 'pg';
import type { ClaimedJob, HeldLease, JobKind, Telemetry, WorkerActivity, WorkerCommand } from '@avatar-fleet/contracts';
import { Channels } from '../database/notify-listener';

/**
 * Queue semantics in SQL, in one place: claim, renew, progress, complete, fail, release, reap.
 * Every statement that a worker's write triggers is fenced by (attempt, lease_token) and uses the
 * database clock only. Each method takes the transaction's client; callers batch them (GroupCommit).
 */

/** Exponential backoff with jitter in [50 %, 100 %], from the job's own policy columns. */
const BACKOFF = `make_interval(secs => least(backoff_max_ms, backoff_base_ms * power(2, least(attempts_used, 30)))
  * (0.5 + random() * 0.5) / 1000.0)`;

/** Columns reset when a running job goes back to the queue. */
const BACK_TO_QUEUE = `lease_token = NULL, lease_expires_at = NULL, deadline_at = NULL, worker_id = NULL, started_at = NULL`;

export type ClaimOutcome = { kind: 'claimed'; job: ClaimedJob } | { kind: 'empty'; workerKinds: JobKind[] } | { kind: 'draining' } | { kind: 'unknown_worker' };

export type FenceOutcome = 'applied' | 'stale' | 'missing';

export type CompleteOutcome =
  | { kind: 'succeeded' }
  | { kind: 'cancelled' }
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

export interface ReapOutcome {
  offlineWorkers: string[];
  expired: { id: string; state: string }[];
  timedOut: { id: string; state: string }[];
}

export class LeaseRepository {
  /** One statement: pick the best queued job this worker can run, lease it, and log the attempt. */
  async claim(db: PoolClient, workerId: string, leaseTtlSec: number): Promise<ClaimOutcome> {
    const { rows } = await db.query({
      name: 'claim',
      text: `
      WITH w AS (
        SELECT id, kinds, gpu_class, coalesce(vram_gb, 0) AS vram_gb, command FROM workers WHERE id = $1 AND state = 'online'
      ), picked AS (
        SELECT j.id FROM jobs j, w
        WHERE j.state = 'queued' AND w.command IS NULL AND j.run_after <= now() AND j.kind = ANY (w.kinds)
          AND (j.gpu_class IS NULL OR j.gpu_class = w.gpu_class) AND j.min_vram_gb <= w.vram_gb
        ORDER BY j.priority DESC, j.created_at, j.id
        LIMIT 1
        FOR UPDATE OF j SKIP LOCKED
      ), claimed AS (
        UPDATE jobs j SET state = 'running', attempt = j.attempt + 1, lease_token = gen_random_uuid(),
          lease_expires_at = now() + make_interval(secs => $2), worker_id = $1, started_at = now(),
          deadline_at = now() + make_interval(secs => j.timeout_sec), progress = NULL, updated_at = now()
        FROM picked WHERE j.id = picked.id
        RETURNING j.id, j.kind, j.input, j.priority, j.attempt, j.lease_token, j.lease_expires_at, j.deadline_at, j.timeout_sec
      ), logged AS (
        INSERT INTO job_attempts (job_id, attempt, worker_id, lease_token) SELECT id, attempt, $1, lease_token FROM claimed
      )
      SELECT (SELECT command FROM w) AS command, (SELECT kinds FROM w) AS worker_kinds, (SELECT count(*) FROM w)::int AS worker_ok, c.*
      FROM (SELECT 1) one LEFT JOIN claimed c ON true`,
      values: [workerId, leaseTtlSec],
    });
    const row = rows[0];
    if (!row || row.worker_ok === 0) return { kind: 'unknown_worker' };
    if (row.command) return { kind: 'draining' };
    if (!row.id) return { kind: 'empty', workerKinds: row.worker_kinds };
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

  /** Records liveness and extends the leases the worker lists, if they are still its own. */
  async heartbeat(
    db: PoolClient,
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
        WHERE j.id = held.job_id AND j.attempt = held.attempt AND j.lease_token = held.lease_token
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
    db: PoolClient,
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
  async confirmRunning(db: PoolClient, jobId: string, fence: { attempt: number; leaseToken: string }): Promise<FenceOutcome> {
    const { rowCount } = await db.query({
      name: 'confirm-running',
      text: `SELECT 1 FROM jobs WHERE id = $1 AND attempt = $2 AND lease_token = $3 AND state = 'running'`,
      values: [jobId, fence.attempt, fence.leaseToken],
    });
    return rowCount ? 'applied' : this.classifyStale(db, jobId);
  }

  /**
   * The accepted completion publishes the result in the same statement that ends the job.
   * A cancellation requested meanwhile wins: the job ends cancelled and the result is dropped.
   */
  async complete(db: PoolClient, jobId: string, fence: { attempt: number; leaseToken: string }, result: object): Promise<CompleteOutcome> {
    const json = JSON.stringify(result);
    const { rows } = await db.query({
      name: 'complete',
      text: `
      WITH done AS (
        UPDATE jobs SET
          state = CASE WHEN cancel_requested THEN 'cancelled' ELSE 'succeeded' END,
          result = CASE WHEN cancel_requested THEN NULL ELSE $4::jsonb END,
          error_code = CASE WHEN cancel_requested THEN 'cancelled' END,
          error_message = CASE WHEN cancel_requested THEN 'cancelled on request' END,
          lease_expires_at = NULL, deadline_at = NULL, finished_at = now(), updated_at = now()
        WHERE id = $1 AND attempt = $2 AND lease_token = $3 AND state = 'running'
        RETURNING id, state
      ), logged AS (
        UPDATE job_attempts a SET ended_at = now(), outcome = done.state, result = $4::jsonb
        FROM done WHERE a.job_id = done.id AND a.attempt = $2
      )
      SELECT state, pg_notify('${Channels.jobFinished}', id::text) FROM done`,
      values: [jobId, fence.attempt, fence.leaseToken, json],
    });
    if (rows[0]) return { kind: rows[0].state === 'cancelled' ? 'cancelled' : 'succeeded' };
    // Not current: a repeat of the accepted completion is answered as if it were the first.
    const prior = await db.query({
      name: 'complete-prior',
      text: `SELECT j.state, a.result = $4::jsonb AS same FROM jobs j
             JOIN job_attempts a ON a.job_id = j.id AND a.attempt = j.attempt
             WHERE j.id = $1 AND j.attempt = $2 AND j.lease_token = $3 AND j.state = 'succeeded'`,
      values: [jobId, fence.attempt, fence.leaseToken, json],
    });
    if (prior.rows[0]) return { kind: prior.rows[0].same ? 'duplicate' : 'mismatch' };
    return { kind: await this.classifyStale(db, jobId) } as { kind: 'stale' | 'missing' };
  }

  /** A reported failure: back to the queue with backoff if retryable and attempts remain, else failed. */
  async fail(
    db: PoolClient,
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
  async release(db: PoolClient, workerId: string, onlyJob?: { id: string; attempt: number; leaseToken: string }): Promise<string[]> {
    const { rows } = await db.query({
      name: 'release',
      text: `
      WITH done AS (
        UPDATE jobs SET state = CASE WHEN cancel_requested THEN 'cancelled' ELSE 'queued' END,
          finished_at = CASE WHEN cancel_requested THEN now() END,
          error_code = CASE WHEN cancel_requested THEN 'cancelled' ELSE error_code END,
          error_message = CASE WHEN cancel_requested THEN 'cancelled on request' ELSE error_message END,
          run_after = now(), ${BACK_TO_QUEUE}, updated_at = now()
        WHERE state = 'running' AND worker_id = $1
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

  /** Marks silent workers offline, requeues or ends jobs whose lease or deadline passed. */
  async reap(db: PoolClient, opts: { heartbeatIntervalSec: number; offlineAfterIntervals: number; maxLeaseLosses: number }): Promise<ReapOutcome> {
    const offline = await db.query(
      `UPDATE workers SET state = 'offline'
       WHERE state = 'online' AND last_heartbeat_at < now() - make_interval(secs => $1::float8 * $2) RETURNING id`,
      [opts.heartbeatIntervalSec, opts.offlineAfterIntervals],
    );
    const expired = await db.query(
      `WITH due AS (
         SELECT id FROM jobs WHERE state = 'running' AND lease_expires_at < now() FOR UPDATE SKIP LOCKED
       ), done AS (
         UPDATE jobs j SET lease_losses = lease_losses + 1,
           state = CASE WHEN cancel_requested THEN 'cancelled' WHEN lease_losses + 1 >= $1 THEN 'failed' ELSE 'queued' END,
           error_code = CASE WHEN cancel_requested THEN 'cancelled' WHEN lease_losses + 1 >= $1 THEN 'too_many_lease_losses' ELSE 'lease_lost' END,
           error_message = CASE WHEN cancel_requested THEN 'cancelled on request'
             WHEN lease_losses + 1 >= $1 THEN format('lost its worker %s times (the job may be killing its workers)', lease_losses + 1)
             ELSE format('worker %s stopped renewing its lease', worker_id) END,
           run_after = CASE WHEN lease_losses + 1 < $1 THEN now() + ${BACKOFF.replace('attempts_used', 'lease_losses')} ELSE run_after END,
           finished_at = CASE WHEN cancel_requested OR lease_losses + 1 >= $1 THEN now() END,
           ${BACK_TO_QUEUE}, updated_at = now()
         FROM due WHERE j.id = due.id
         RETURNING j.id, j.state, j.attempt
       ), logged AS (
         UPDATE job_attempts a SET ended_at = now(), outcome = 'lease_lost' FROM done WHERE a.job_id = done.id AND a.attempt = done.attempt
       )
       SELECT id, state, CASE WHEN state <> 'queued' THEN pg_notify('${Channels.jobFinished}', id::text) END FROM done`,
      [opts.maxLeaseLosses],
    );
    const timedOut = await db.query(
      `WITH due AS (
         SELECT id FROM jobs WHERE state = 'running' AND deadline_at < now() FOR UPDATE SKIP LOCKED
       ), done AS (
         UPDATE jobs j SET attempts_used = attempts_used + 1,
           state = CASE WHEN cancel_requested THEN 'cancelled' WHEN attempts_used + 1 < max_attempts THEN 'queued' ELSE 'failed' END,
           error_code = CASE WHEN cancel_requested THEN 'cancelled' ELSE 'timeout' END,
           error_message = CASE WHEN cancel_requested THEN 'cancelled on request'
             ELSE format('attempt %s ran past its %s s time-out', attempt, timeout_sec) END,
           run_after = CASE WHEN attempts_used + 1 < max_attempts THEN now() + ${BACKOFF} ELSE run_after END,
           finished_at = CASE WHEN cancel_requested OR attempts_used + 1 >= max_attempts THEN now() END,
           ${BACK_TO_QUEUE}, updated_at = now()
         FROM due WHERE j.id = due.id
         RETURNING j.id, j.state, j.attempt
       ), logged AS (
         UPDATE job_attempts a SET ended_at = now(), outcome = 'timed_out', error_code = 'timeout' FROM done
         WHERE a.job_id = done.id AND a.attempt = done.attempt
       )
       SELECT id, state, CASE WHEN state <> 'queued' THEN pg_notify('${Channels.jobFinished}', id::text) END FROM done`,
    );
    return {
      offlineWorkers: offline.rows.map((r) => r.id),
      expired: expired.rows.map((r) => ({ id: r.id, state: r.state })),
      timedOut: timedOut.rows.map((r) => ({ id: r.id, state: r.state })),
    };
  }

  /**
   * Wakes parked claimers for jobs whose backoff ended since the last tick: nothing else would,
   * since their NOTIFY was sent (or not) when they were requeued, before they were claimable.
   */
  async announceMatured(db: PoolClient, windowMs: number): Promise<number> {
    const { rows } = await db.query(
      `SELECT pg_notify('${Channels.jobsQueued}', kind) FROM (
         SELECT DISTINCT kind FROM jobs
         WHERE state = 'queued' AND run_after <= now() AND run_after > now() - make_interval(secs => $1 / 1000.0)
       ) k`,
      [windowMs],
    );
    return rows.length;
  }

  private async classifyStale(db: PoolClient, jobId: string): Promise<'stale' | 'missing'> {
    const { rowCount } = await db.query({ name: 'job-exists', text: 'SELECT 1 FROM jobs WHERE id = $1', values: [jobId] });
    return rowCount ? 'stale' : 'missing';
  }
}
