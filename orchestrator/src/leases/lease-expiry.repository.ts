import { Channels } from '../database/notify-listener';
import type { Queryable } from './lease.repository';
import { BACK_TO_QUEUE, backoff } from './sql-fragments';

export interface ReapOutcome {
  offlineWorkers: string[];
  expired: { id: string; state: string }[];
  timedOut: { id: string; state: string }[];
}

/** The reaper's SQL: what happens to leases and workers that went quiet. Runs under the reaper's advisory lock. */
export class LeaseExpiryRepository {
  /** Marks silent workers offline, requeues or ends jobs whose lease or deadline passed. */
  async reap(db: Queryable, opts: { heartbeatIntervalSec: number; offlineAfterIntervals: number; maxLeaseLosses: number }): Promise<ReapOutcome> {
    const offline = await db.query(
      `UPDATE workers SET state = 'offline'
       WHERE state = 'online' AND last_heartbeat_at < now() - make_interval(secs => $1::float8 * $2) RETURNING id`,
      [opts.heartbeatIntervalSec, opts.offlineAfterIntervals],
    );
    const expired = await db.query(
      `WITH due AS (
         SELECT id, attempt, worker_id, lease_token, started_at FROM jobs
         WHERE state = 'running' AND lease_expires_at < now() FOR UPDATE SKIP LOCKED
       ), done AS (
         UPDATE jobs j SET lease_losses = lease_losses + 1,
           state = CASE WHEN cancel_requested THEN 'cancelled' WHEN lease_losses + 1 >= $1 THEN 'failed' ELSE 'queued' END,
           error_code = CASE WHEN cancel_requested THEN 'cancelled' WHEN lease_losses + 1 >= $1 THEN 'too_many_lease_losses' ELSE 'lease_lost' END,
           error_message = CASE WHEN cancel_requested THEN 'cancelled on request'
             WHEN lease_losses + 1 >= $1 THEN format('lost its worker %s times (the job may be killing its workers)', lease_losses + 1)
             ELSE format('worker %s stopped renewing its lease', j.worker_id) END,
           run_after = CASE WHEN lease_losses + 1 < $1 THEN now() + ${backoff('lease_losses')} ELSE run_after END,
           finished_at = CASE WHEN cancel_requested OR lease_losses + 1 >= $1 THEN now() END,
           ${BACK_TO_QUEUE}, updated_at = now()
         FROM due WHERE j.id = due.id
         RETURNING j.id, j.state, due.attempt, due.worker_id, due.lease_token, due.started_at
       ), logged AS (
         INSERT INTO job_attempts (job_id, attempt, worker_id, lease_token, claimed_at, ended_at, outcome)
         SELECT id, attempt, worker_id, lease_token, started_at, now(), 'lease_lost' FROM done
       )
       SELECT id, state, CASE WHEN state <> 'queued' THEN pg_notify('${Channels.jobFinished}', id::text) END FROM done`,
      [opts.maxLeaseLosses],
    );
    const timedOut = await db.query(
      `WITH due AS (
         SELECT id, attempt, worker_id, lease_token, started_at FROM jobs
         WHERE lease_expires_at IS NOT NULL AND state = 'running' AND deadline_at < now() FOR UPDATE SKIP LOCKED
       ), done AS (
         UPDATE jobs j SET attempts_used = attempts_used + 1,
           state = CASE WHEN cancel_requested THEN 'cancelled' WHEN attempts_used + 1 < max_attempts THEN 'queued' ELSE 'failed' END,
           error_code = CASE WHEN cancel_requested THEN 'cancelled' ELSE 'timeout' END,
           error_message = CASE WHEN cancel_requested THEN 'cancelled on request'
             ELSE format('attempt %s ran past its %s s time-out', j.attempt, j.timeout_sec) END,
           run_after = CASE WHEN attempts_used + 1 < max_attempts THEN now() + ${backoff('attempts_used')} ELSE run_after END,
           finished_at = CASE WHEN cancel_requested OR attempts_used + 1 >= max_attempts THEN now() END,
           ${BACK_TO_QUEUE}, updated_at = now()
         FROM due WHERE j.id = due.id
         RETURNING j.id, j.state, due.attempt, due.worker_id, due.lease_token, due.started_at
       ), logged AS (
         INSERT INTO job_attempts (job_id, attempt, worker_id, lease_token, claimed_at, ended_at, outcome, error_code)
         SELECT id, attempt, worker_id, lease_token, started_at, now(), 'timed_out', 'timeout' FROM done
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
  async announceMatured(db: Queryable, windowMs: number): Promise<number> {
    const { rows } = await db.query(
      `SELECT pg_notify('${Channels.jobsQueued}', kind) FROM (
         SELECT DISTINCT kind FROM jobs
         WHERE state = 'queued' AND run_after <= now() AND run_after > now() - make_interval(secs => $1 / 1000.0)
       ) k`,
      [windowMs],
    );
    return rows.length;
  }
}
