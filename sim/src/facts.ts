import type { FleetClient, JobView } from '@avatar-fleet/contracts';
import type { Pool } from 'pg';

/** A job as the database holds it at the end of a run. */
export interface JobRow {
  id: string;
  key: string;
  state: string;
  attempt: number;
  leaseToken: string | null;
  leaseLosses: number;
  result: Record<string, unknown> | null;
  errorCode: string | null;
  finishedAt: number | null;
}

/** One ended attempt, from job_attempts (written when the attempt ended). */
export interface AttemptRow {
  jobId: string;
  attempt: number;
  workerId: string;
  leaseToken: string;
  claimedAt: number;
  endedAt: number;
  outcome: string;
}

/** What the orchestrator says happened: its database, and the product API's view of the same jobs. */
export interface RunFacts {
  jobs: JobRow[];
  attempts: AttemptRow[];
  /** The API's view by job id; published results are read from here. */
  api: Map<string, JobView>;
}

const ms = (d: Date | null): number | null => (d ? d.getTime() : null);

/** Reads this run's jobs (by idempotency-key prefix), their attempts, and the API's view of them. */
export async function loadFacts(pool: Pool, fleet: FleetClient, keyPrefix: string): Promise<RunFacts> {
  const jobs = await pool.query(
    `SELECT id, idempotency_key, state, attempt, lease_token, lease_losses, result, error_code, finished_at
     FROM jobs WHERE starts_with(idempotency_key, $1) ORDER BY created_at`,
    [`${keyPrefix}-`],
  );
  const attempts = await pool.query(
    `SELECT job_id, attempt, worker_id, lease_token, claimed_at, ended_at, outcome FROM job_attempts
     WHERE job_id = ANY ($1::uuid[]) ORDER BY job_id, attempt`,
    [jobs.rows.map((r) => r.id)],
  );
  return {
    jobs: jobs.rows.map((r) => ({
      id: r.id, key: r.idempotency_key, state: r.state, attempt: r.attempt, leaseToken: r.lease_token,
      leaseLosses: r.lease_losses, result: r.result, errorCode: r.error_code, finishedAt: ms(r.finished_at),
    })),
    attempts: attempts.rows.map((r) => ({
      jobId: r.job_id, attempt: r.attempt, workerId: r.worker_id, leaseToken: r.lease_token,
      claimedAt: r.claimed_at.getTime(), endedAt: ms(r.ended_at) ?? Number.POSITIVE_INFINITY, outcome: r.outcome,
    })),
    api: await listAll(fleet),
  };
}

async function listAll(fleet: FleetClient): Promise<Map<string, JobView>> {
  const out = new Map<string, JobView>();
  let cursor: string | undefined;
  do {
    const page = await fleet.listJobs({ limit: 200, cursor });
    for (const job of page.items) out.set(job.id, job);
    cursor = page.nextCursor ?? undefined;
  } while (cursor);
  return out;
}

/** Job counts by state, for watching a run's progress. */
export async function countByState(pool: Pool, keyPrefix: string): Promise<Record<string, number>> {
  const { rows } = await pool.query(
    `SELECT state, count(*)::int AS n FROM jobs WHERE starts_with(idempotency_key, $1) GROUP BY state`,
    [`${keyPrefix}-`],
  );
  return Object.fromEntries(rows.map((r) => [r.state, r.n]));
}
