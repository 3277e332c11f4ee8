import type { Pool } from 'pg';
import type { Queryable } from '../leases/lease.repository';
import type { JobKind, JobState, JobView } from '@avatar-fleet/contracts';
import { Channels } from '../database/notify-listener';

export interface NewJob {
  owner: string;
  kind: JobKind;
  input: Record<string, unknown>;
  priority: number;
  gpuClass: string | null;
  minVramGb: number;
  idempotencyKey: string | null;
  requestHash: string;
  webhookUrl: string | null;
  maxAttempts: number;
  timeoutSec: number;
  backoffBaseMs: number;
  backoffMaxMs: number;
}

export interface ListPosition {
  createdUs: string;
  id: string;
}

export type CreateOutcome = { kind: 'created' | 'existing'; job: JobView } | { kind: 'conflict' };
export type TransitionOutcome = { kind: 'ok'; job: JobView } | { kind: 'missing' } | { kind: 'invalid_state'; state: JobState };

const VIEW_COLUMNS = `id, owner, kind, state, input, priority, gpu_class, min_vram_gb, idempotency_key, webhook_url, attempt,
  attempts_used, max_attempts, lease_losses, timeout_sec, cancel_requested, worker_id, progress, result, error_code,
  error_message, created_at, updated_at, run_after, started_at, finished_at`;

/** The product side of the jobs table: create, read, list, cancel, retry. Worker writes live in LeaseRepository. */
export class JobRepository {
  /** Inserts the job, or returns the one an earlier request with the same idempotency key made. */
  async create(db: Queryable, job: NewJob): Promise<CreateOutcome> {
    const inserted = await db.query({
      name: 'job-create',
      text: `
      WITH ins AS (
        INSERT INTO jobs (owner, kind, state, input, priority, gpu_class, min_vram_gb, idempotency_key, request_hash,
          webhook_url, max_attempts, timeout_sec, backoff_base_ms, backoff_max_ms)
        VALUES ($1, $2, 'queued', $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
        ON CONFLICT (owner, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
        RETURNING ${VIEW_COLUMNS}
      )
      SELECT ins.*, pg_notify('${Channels.jobsQueued}', ins.kind) FROM ins`,
      values: [
        job.owner, job.kind, JSON.stringify(job.input), job.priority, job.gpuClass, job.minVramGb, job.idempotencyKey,
        job.requestHash, job.webhookUrl, job.maxAttempts, job.timeoutSec, job.backoffBaseMs, job.backoffMaxMs,
      ],
    });
    if (inserted.rows[0]) return { kind: 'created', job: toView(inserted.rows[0]) };
    const existing = await db.query(
      `SELECT ${VIEW_COLUMNS}, request_hash FROM jobs WHERE owner = $1 AND idempotency_key = $2`,
      [job.owner, job.idempotencyKey],
    );
    const row = existing.rows[0];
    if (!row || row.request_hash !== job.requestHash) return { kind: 'conflict' };
    return { kind: 'existing', job: toView(row) };
  }

  async get(db: Queryable, owner: string | null, id: string): Promise<JobView | null> {
    const { rows } = await db.query({
      name: 'job-get',
      text: `SELECT ${VIEW_COLUMNS} FROM jobs WHERE id = $1 AND ($2::text IS NULL OR owner = $2)`,
      values: [id, owner],
    });
    return rows[0] ? toView(rows[0]) : null;
  }

  /** Newest first; the cursor is the (created_at, id) of the last row of the previous page. */
  async list(
    db: Pool,
    owner: string | null,
    filter: { state?: JobState; kind?: JobKind; limit: number; after?: ListPosition },
  ): Promise<{ items: JobView[]; last: ListPosition | null }> {
    // Positions are kept in whole microseconds: a JavaScript Date would round them to milliseconds.
    const { rows } = await db.query(
      `SELECT ${VIEW_COLUMNS}, (extract(epoch FROM created_at) * 1000000)::bigint::text AS created_us FROM jobs
       WHERE ($1::text IS NULL OR owner = $1) AND ($2::text IS NULL OR state = $2) AND ($3::text IS NULL OR kind = $3)
         AND ($4::bigint IS NULL OR (created_at, id) < (timestamptz 'epoch' + $4::bigint * interval '1 microsecond', $5::uuid))
       ORDER BY created_at DESC, id DESC LIMIT $6`,
      [owner, filter.state ?? null, filter.kind ?? null, filter.after?.createdUs ?? null, filter.after?.id ?? null, filter.limit],
    );
    const lastRow = rows[rows.length - 1];
    return { items: rows.map(toView), last: lastRow ? { createdUs: lastRow.created_us, id: lastRow.id } : null };
  }

  /** Queued: cancelled at once. Running: flagged, and the worker learns it from its next heartbeat or progress reply. */
  async cancel(db: Queryable, owner: string | null, id: string): Promise<TransitionOutcome> {
    const { rows } = await db.query(
      `WITH done AS (
         UPDATE jobs SET
           state = CASE WHEN state = 'queued' THEN 'cancelled' ELSE state END,
           cancel_requested = true,
           error_code = CASE WHEN state = 'queued' THEN 'cancelled' ELSE error_code END,
           error_message = CASE WHEN state = 'queued' THEN 'cancelled on request' ELSE error_message END,
           finished_at = CASE WHEN state = 'queued' THEN now() ELSE finished_at END,
           updated_at = now()
         WHERE id = $1 AND ($2::text IS NULL OR owner = $2) AND state IN ('queued', 'running')
         RETURNING ${VIEW_COLUMNS}
       )
       SELECT done.*, CASE WHEN state = 'cancelled' THEN pg_notify('${Channels.jobFinished}', id::text) END FROM done`,
      [id, owner],
    );
    if (rows[0]) return { kind: 'ok', job: toView(rows[0]) };
    return this.explain(db, owner, id, ['cancelled']);
  }

  /** A failed or cancelled job goes back to the queue with a fresh budget of attempts. */
  async retry(db: Queryable, owner: string | null, id: string): Promise<TransitionOutcome> {
    const { rows } = await db.query(
      `WITH done AS (
         UPDATE jobs SET state = 'queued', attempts_used = 0, lease_losses = 0, releases = 0, cancel_requested = false,
           error_code = NULL, error_message = NULL, result = NULL, progress = NULL, finished_at = NULL,
           run_after = now(), updated_at = now()
         WHERE id = $1 AND ($2::text IS NULL OR owner = $2) AND state IN ('failed', 'cancelled')
         RETURNING ${VIEW_COLUMNS}
       )
       SELECT done.*, pg_notify('${Channels.jobsQueued}', kind) FROM done`,
      [id, owner],
    );
    if (rows[0]) return { kind: 'ok', job: toView(rows[0]) };
    return this.explain(db, owner, id, []);
  }

  /** Counts by kind and state for metrics and the dashboard. */
  async depth(db: Pool): Promise<{ kind: string; state: string; count: number }[]> {
    const { rows } = await db.query(`SELECT kind, state, count(*)::int AS count FROM jobs GROUP BY kind, state`);
    return rows;
  }

  private async explain(db: Queryable, owner: string | null, id: string, idempotentStates: JobState[]): Promise<TransitionOutcome> {
    const job = await this.get(db, owner, id);
    if (!job) return { kind: 'missing' };
    if (idempotentStates.includes(job.state)) return { kind: 'ok', job };
    return { kind: 'invalid_state', state: job.state };
  }
}

type Row = Record<string, any>;

function iso(value: Date | null): string | null {
  return value ? value.toISOString() : null;
}

export function toView(r: Row): JobView {
  return {
    id: r.id,
    owner: r.owner,
    kind: r.kind,
    state: r.state,
    input: r.input,
    priority: r.priority,
    requirements: { gpuClass: r.gpu_class, minVramGb: r.min_vram_gb },
    idempotencyKey: r.idempotency_key,
    webhookUrl: r.webhook_url,
    attempt: r.attempt,
    attemptsUsed: r.attempts_used,
    maxAttempts: r.max_attempts,
    leaseLosses: r.lease_losses,
    timeoutSec: r.timeout_sec,
    cancelRequested: r.cancel_requested,
    workerId: r.worker_id,
    progress: r.progress
      ? {
          stage: r.progress.stage,
          fraction: r.progress.fraction,
          sequence: Number(r.progress.sequence),
          message: r.progress.message ?? null,
          updatedAt: r.progress.updatedAt,
        }
      : null,
    result: r.result,
    error: r.error_code ? { code: r.error_code, message: r.error_message ?? '' } : null,
    createdAt: r.created_at.toISOString(),
    updatedAt: r.updated_at.toISOString(),
    runAfter: r.run_after.toISOString(),
    startedAt: iso(r.started_at),
    finishedAt: iso(r.finished_at),
  };
}
