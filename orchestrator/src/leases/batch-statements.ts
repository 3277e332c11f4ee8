import { storagePrefixOf, type JobKind } from '@avatar-fleet/contracts';
import { Channels } from '../database/notify-listener';
import type { ClaimOutcome } from './lease.repository';

/**
 * The batched lease statements, built from shared CTEs so that a claim, a completion, and a
 * completion that claims the worker's next job are the same SQL wherever they run.
 */

/** Parameters of the claim CTEs: the claimers' shared capabilities and the lease TTL. */
interface ClaimParams {
  kinds: string;
  gpuClass: string;
  vramGb: string;
  leaseTtlSec: string;
}

/**
 * Leases one job to each eligible claimer in `claim_src(worker_id, ord, prior_lease_token)`: the best
 * `n` claimable jobs are locked with SKIP LOCKED and paired with the claimers in order. Defines
 * eligible, claimers, picked and claimed. The attempt is written to job_attempts when it ends, not
 * here: one write per attempt. `prior_lease_token` is the completed attempt a claimNext claims after.
 */
function claimCtes(p: ClaimParams): string {
  return `
  eligible AS (
    -- KEY SHARE: a deregistration locks its worker FOR UPDATE before marking it stopped, so a claim
    -- either leases before that lock (and the deregistration then releases the job) or waits, sees
    -- the worker stopped and leases nothing. Heartbeats' plain updates do not conflict with it.
    SELECT w.id FROM workers w
    WHERE w.id IN (SELECT worker_id FROM claim_src) AND w.state = 'online' AND w.command IS NULL AND w.kinds = ${p.kinds}::text[]
      AND w.gpu_class IS NOT DISTINCT FROM ${p.gpuClass}::text AND coalesce(w.vram_gb, 0) = ${p.vramGb}::real
    FOR KEY SHARE OF w
  ), claimers AS (
    SELECT src.worker_id, src.ord, src.prior_lease_token, row_number() OVER (ORDER BY src.ord) AS rn
    FROM claim_src src JOIN eligible e ON e.id = src.worker_id
  ), picked AS (
    -- One ordered read of jobs_claim_idx. Kind, class and backoff are index conditions, checked
    -- on the index entries: queued jobs the claimers may not take cost no table reads, and
    -- PostgreSQL's skip scan jumps over runs of them (see the migration that made the index).
    SELECT id, row_number() OVER () AS rn FROM (
      SELECT j.id FROM jobs j
      WHERE j.state = 'queued' AND j.run_after <= now() AND j.kind = ANY (${p.kinds}::text[])
        AND coalesce(j.gpu_class, '') = ANY (ARRAY[coalesce(${p.gpuClass}::text, ''), '']) AND j.min_vram_gb <= ${p.vramGb}::real
      ORDER BY j.priority DESC, j.run_after, j.kind, coalesce(j.gpu_class, ''), j.id
      LIMIT (SELECT count(*) FROM claimers)
      FOR UPDATE SKIP LOCKED
    ) s
  ), claimed AS (
    UPDATE jobs j SET state = 'running', attempt = j.attempt + 1, lease_token = gen_random_uuid(),
      lease_expires_at = now() + make_interval(secs => ${p.leaseTtlSec}), worker_id = c.worker_id, started_at = now(),
      deadline_at = now() + make_interval(secs => j.timeout_sec), progress = NULL, prior_lease_token = c.prior_lease_token,
      updated_at = now()
    FROM picked p JOIN claimers c USING (rn)
    WHERE j.id = p.id
    RETURNING c.ord, j.id, j.kind, j.input, j.priority, j.attempt, j.lease_token, j.lease_expires_at, j.deadline_at, j.timeout_sec, j.worker_id,
      j.owner
  )`;
}

/** Columns of the final SELECT that describe each request's claim; needs `w` (workers), `c` (claimers), `cl` (claimed). */
const CLAIM_COLUMNS = `w.state AS worker_state, w.command, (c.ord IS NOT NULL) AS eligible, cl.id, cl.kind, cl.input,
  cl.priority, cl.attempt, cl.lease_token, cl.lease_expires_at, cl.deadline_at, cl.timeout_sec, cl.owner`;

/**
 * Applies fenced completions from `req(job_id, attempt, lease_token, result, worker_id, ord)`
 * (`worker_id`, when set, must be the job's holder: the worker whose token made the request),
 * publishing each result in the statement that ends its job; a cancellation requested meanwhile
 * wins, and clears the lease as every other way to a cancelled job does. A succeeded job keeps its
 * lease token and worker: a repeated completion is recognised by them. One NOTIFY lists every job
 * the batch finished. Defines done, logged and notified.
 */
const COMPLETION_CTES = `
  done AS (
    UPDATE jobs j SET
      state = CASE WHEN j.cancel_requested THEN 'cancelled' ELSE 'succeeded' END,
      result = CASE WHEN j.cancel_requested THEN NULL ELSE req.result END,
      error_code = CASE WHEN j.cancel_requested THEN 'cancelled' END,
      error_message = CASE WHEN j.cancel_requested THEN 'cancelled on request' END,
      -- A cancelled job ends as BACK_TO_QUEUE leaves one (sql-fragments.ts).
      lease_token = CASE WHEN j.cancel_requested THEN NULL ELSE j.lease_token END,
      worker_id = CASE WHEN j.cancel_requested THEN NULL ELSE j.worker_id END,
      started_at = CASE WHEN j.cancel_requested THEN NULL ELSE j.started_at END,
      prior_lease_token = CASE WHEN j.cancel_requested THEN NULL ELSE j.prior_lease_token END,
      lease_expires_at = NULL, deadline_at = NULL, finished_at = now(), updated_at = now()
    FROM req JOIN jobs held ON held.id = req.job_id
    -- id = ANY(...) pins the plan to primary-key lookups; joining on req alone lets stale
    -- statistics pick a scan of every running job.
    WHERE j.id = ANY ($1::uuid[]) AND j.id = req.job_id AND j.attempt = req.attempt AND j.lease_token = req.lease_token
      AND j.state = 'running' AND (req.worker_id IS NULL OR j.worker_id = req.worker_id)
    -- The attempt's record is taken from the row as it was (held): a cancellation clears these columns.
    -- They cannot have changed since: a new claim would have changed the attempt and the lease token too.
    RETURNING j.id, j.state, req.ord, req.attempt, req.result, req.worker_id, held.worker_id AS holder, held.lease_token, held.started_at
  ), logged AS (
    INSERT INTO job_attempts (job_id, attempt, worker_id, lease_token, claimed_at, ended_at, outcome, result)
    SELECT id, attempt, holder, lease_token, started_at, now(), state, result FROM done
  ), notified AS (
    -- The payload lists the finished job ids, comma-separated (at most 200 fit in 8000 bytes).
    SELECT pg_notify('${Channels.jobFinished}', string_agg(id::text, ',')) FROM done HAVING count(*) > 0
  )`;

const COMPLETION_REQ = `req AS (
    SELECT * FROM unnest($1::uuid[], $2::int[], $3::uuid[], $4::jsonb[], $5::text[])
      WITH ORDINALITY AS r(job_id, attempt, lease_token, result, worker_id, ord)
  )`;

/** $1 worker ids (one per claimer, repeats allowed), $2-$4 capabilities, $5 lease TTL. */
export const CLAIM_BATCH_SQL = `
  WITH claim_src AS (
    SELECT worker_id, ord, NULL::uuid AS prior_lease_token FROM unnest($1::text[]) WITH ORDINALITY AS r(worker_id, ord)
  ), ${claimCtes({ kinds: '$2', gpuClass: '$3', vramGb: '$4', leaseTtlSec: '$5' })}
  SELECT claim_src.ord, ${CLAIM_COLUMNS}
  FROM claim_src LEFT JOIN workers w ON w.id = claim_src.worker_id
    LEFT JOIN claimers c ON c.ord = claim_src.ord LEFT JOIN claimed cl ON cl.ord = claim_src.ord
  ORDER BY claim_src.ord`;

/** $1-$4 job ids, attempts, lease tokens, results; $5 the completing workers (null: not checked). */
export const COMPLETE_BATCH_SQL = `
  WITH ${COMPLETION_REQ}, ${COMPLETION_CTES}
  SELECT ord, state, (SELECT count(*) FROM notified) AS notified FROM done`;

/**
 * Completions whose workers then claim their next job, in one statement and one commit: a busy
 * worker's round trip costs the database a single statement. Only a completion that succeeded
 * claims. $1-$5 as COMPLETE_BATCH_SQL with the workers' ids, $6-$8 their shared capabilities, $9 TTL.
 */
export const COMPLETE_AND_CLAIM_SQL = `
  WITH ${COMPLETION_REQ}, ${COMPLETION_CTES},
  claim_src AS (SELECT worker_id, ord, lease_token AS prior_lease_token FROM done WHERE state = 'succeeded'),
  ${claimCtes({ kinds: '$6', gpuClass: '$7', vramGb: '$8', leaseTtlSec: '$9' })}
  SELECT req.ord, done.state AS completed, (SELECT count(*) FROM notified) AS notified, ${CLAIM_COLUMNS}
  FROM req LEFT JOIN done ON done.ord = req.ord LEFT JOIN workers w ON w.id = req.worker_id
    LEFT JOIN claimers c ON c.ord = req.ord LEFT JOIN claimed cl ON cl.ord = req.ord
  ORDER BY req.ord`;

/** What one row of a claiming statement says about its claimer. */
export function toClaimOutcome(row: Record<string, any>): ClaimOutcome {
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
        // The worker keeps every key of the job under its owner's namespace.
        storagePrefix: storagePrefixOf(row.owner),
      },
    };
  }
  if (row.worker_state !== 'online') return { kind: 'unknown_worker' };
  if (row.command) return { kind: 'draining' };
  return row.eligible ? { kind: 'empty' } : { kind: 'caps_changed' };
}

/**
 * Many workers' heartbeats in one statement and one commit. $1-$4 one entry per beat (worker id,
 * activity, telemetry, execution provider); $5-$8 one entry per lease a beat lists (the beat's
 * 1-based position, job id, attempt, lease token); $9 the lease TTL. A lease is extended only while
 * it is still that worker's and the worker is registered (not stopped). One row per beat of a known
 * worker: its pending command, previous state, seconds since its previous beat, when a lease renewed
 * now expires (by the database's clock), and the leases renewed for exactly that beat's list.
 */
export const HEARTBEAT_BATCH_SQL = `
  WITH beat AS (
    SELECT * FROM unnest($1::text[], $2::text[], $3::jsonb[], $4::text[]) WITH ORDINALITY AS b(worker_id, activity, telemetry, provider, ord)
  ), latest AS (
    -- An UPDATE changes a row once: a worker that beat twice in one batch is written with its last beat.
    SELECT DISTINCT ON (worker_id) * FROM beat ORDER BY worker_id, ord DESC
  ), old AS (
    SELECT id, state, last_heartbeat_at FROM workers WHERE id = ANY ($1::text[]) AND state <> 'stopped'
  ), live AS (
    UPDATE workers w SET last_heartbeat_at = now(), state = 'online', activity = l.activity, telemetry = l.telemetry,
      execution_provider = coalesce(l.provider, w.execution_provider)
    FROM latest l JOIN old ON old.id = l.worker_id
    WHERE w.id = l.worker_id
    RETURNING w.id, w.command, old.state AS old_state, extract(epoch FROM now() - old.last_heartbeat_at)::float8 AS lag_sec
  ), held AS (
    SELECT h.beat, h.job_id, h.attempt, h.lease_token, b.worker_id
    FROM unnest($5::int[], $6::uuid[], $7::int[], $8::uuid[]) AS h(beat, job_id, attempt, lease_token) JOIN beat b ON b.ord = h.beat
  ), renewed AS (
    UPDATE jobs j SET lease_expires_at = greatest(j.lease_expires_at, now() + make_interval(secs => $9))
    FROM held
    WHERE j.id = ANY ($6::uuid[]) AND j.id = held.job_id AND j.attempt = held.attempt AND j.lease_token = held.lease_token
      AND j.state = 'running' AND j.worker_id = held.worker_id AND held.worker_id IN (SELECT id FROM live)
    RETURNING j.id, j.attempt, j.lease_token, j.cancel_requested, j.lease_expires_at
  )
  SELECT b.ord, live.command, live.old_state, live.lag_sec, now() + make_interval(secs => $9) AS fresh_lease_expires_at,
    coalesce((
      SELECT json_agg(json_build_object('id', r.id, 'cancelRequested', r.cancel_requested, 'leaseExpiresAt', r.lease_expires_at))
      FROM held h JOIN renewed r ON r.id = h.job_id AND r.attempt = h.attempt AND r.lease_token = h.lease_token
      WHERE h.beat = b.ord
    ), '[]') AS renewed
  FROM beat b JOIN live ON live.id = b.worker_id`;
