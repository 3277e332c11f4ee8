import { TERMINAL_STATES, type JobState } from '@avatar-fleet/contracts';
import type { Fence, SimEvent } from './events';
import type { AttemptRow, JobRow, RunFacts } from './facts';
import type { Submission } from './submitter';

export type ViolationKind =
  | 'lost' | 'double_accepted' | 'result_mismatch' | 'accepted_not_recorded' | 'overlap' | 'slow_requeue' | 'api_mismatch'
  /** An orchestrator replica exited without being killed. */
  | 'crash';

export interface Violation {
  kind: ViolationKind;
  jobId?: string;
  detail: string;
}

/** A worker death whose lease the orchestrator had to take back, and how long that took. */
export interface Recovery {
  jobId: string;
  how: 'sigkill' | 'freeze';
  /** Death to the attempt's end in the database (requeued, or failed for too many losses). */
  requeueSec: number;
  /** Death to the job's terminal state, reached by a later attempt; null if it never got there. */
  finishSec: number | null;
}

export interface AuditReport {
  jobs: number;
  byState: Record<string, number>;
  attempts: number;
  /** Ended attempts by outcome (succeeded, retrying, lease_lost, released, ...). */
  outcomes: Record<string, number>;
  leaseLosses: number;
  /** Jobs with more than one accepted completion (must be 0). */
  doubleAccepted: number;
  /** Final statuses the orchestrator refused as stale (frozen workers coming back, mostly). */
  staleRefused: number;
  /** Claims a worker received that the database does not remember (a crash lost an uncommitted-to-disk claim). */
  phantomClaims: number;
  recoveries: Recovery[];
  violations: Violation[];
}

export interface AuditOptions {
  /** A death's job must be requeued within this many seconds. */
  requeueBoundSec: number;
}

const TERMINAL = new Set<string>(TERMINAL_STATES);
const sameFence = (a: AttemptRow, f: Fence) => a.jobId === f.jobId && a.attempt === f.attempt && a.leaseToken === f.leaseToken;

/**
 * Checks a finished run against the invariants, from the orchestrator's own records (database and
 * API), using the simulation's event log only for what happened outside them: which completions
 * workers were told were accepted, and when workers died.
 */
export function audit(facts: RunFacts, submission: Submission, events: SimEvent[], options: AuditOptions): AuditReport {
  const violations: Violation[] = [];
  const attemptsByJob = new Map<string, AttemptRow[]>();
  for (const a of facts.attempts) attemptsByJob.set(a.jobId, [...(attemptsByJob.get(a.jobId) ?? []), a]);
  const jobsById = new Map(facts.jobs.map((j) => [j.id, j]));

  checkNoneLost(facts.jobs, submission, violations);
  for (const job of facts.jobs) {
    const attempts = attemptsByJob.get(job.id) ?? [];
    checkAttemptsSerial(job, attempts, violations);
    checkPublished(job, attempts, facts, violations);
  }
  const doubleAccepted = checkAcceptedStatuses(events, attemptsByJob, violations);
  const recoveries = recoveriesOf(events, facts.attempts, jobsById);
  for (const r of recoveries) {
    if (r.requeueSec > options.requeueBoundSec) {
      violations.push({ kind: 'slow_requeue', jobId: r.jobId, detail: `requeued ${r.requeueSec.toFixed(1)} s after its worker died (${r.how}); bound ${options.requeueBoundSec} s` });
    }
  }
  const known = new Set(facts.attempts.map((a) => `${a.jobId}/${a.attempt}/${a.leaseToken}`));
  const claims = events.filter((e) => e.type === 'claimed');
  return {
    jobs: facts.jobs.length,
    byState: countBy(facts.jobs.map((j) => j.state)),
    attempts: facts.attempts.length,
    outcomes: countBy(facts.attempts.map((a) => a.outcome)),
    leaseLosses: facts.jobs.reduce((n, j) => n + j.leaseLosses, 0),
    doubleAccepted,
    staleRefused: events.filter((e) => e.type === 'status_refused').length,
    phantomClaims: claims.filter((e) => !known.has(`${e.fence.jobId}/${e.fence.attempt}/${e.fence.leaseToken}`)).length,
    recoveries,
    violations,
  };
}

/** Every submitted key has exactly its acknowledged job, and every job ended. */
function checkNoneLost(jobs: JobRow[], submission: Submission, out: Violation[]): void {
  const byKey = new Map(jobs.map((j) => [j.key, j]));
  for (const key of submission.refused) out.push({ kind: 'lost', detail: `create ${key} never succeeded` });
  for (const [key, id] of submission.acknowledged) {
    const job = byKey.get(key);
    if (!job) out.push({ kind: 'lost', jobId: id, detail: `acknowledged create ${key} has no job in the database` });
    else if (job.id !== id) out.push({ kind: 'lost', jobId: id, detail: `create ${key} was answered with ${id} but the database holds ${job.id}` });
  }
  for (const job of jobs) if (!TERMINAL.has(job.state)) out.push({ kind: 'lost', jobId: job.id, detail: `still ${job.state} at the end` });
}

/** No job is held by two attempts at once: each attempt starts after the previous one ended. */
function checkAttemptsSerial(job: JobRow, attempts: AttemptRow[], out: Violation[]): void {
  for (let i = 1; i < attempts.length; i++) {
    const prev = attempts[i - 1]!;
    const cur = attempts[i]!;
    if (cur.claimedAt < prev.endedAt) {
      out.push({ kind: 'overlap', jobId: job.id, detail: `attempt ${cur.attempt} (${cur.workerId}) claimed ${prev.endedAt - cur.claimedAt} ms before attempt ${prev.attempt} (${prev.workerId}) ended` });
    }
  }
}

/** A succeeded job published exactly the result of its one succeeded attempt; other jobs published none. */
function checkPublished(job: JobRow, attempts: AttemptRow[], facts: RunFacts, out: Violation[]): void {
  const view = facts.api.get(job.id);
  if (!view) return void out.push({ kind: 'api_mismatch', jobId: job.id, detail: 'the API does not list the job' });
  if (view.state !== job.state) out.push({ kind: 'api_mismatch', jobId: job.id, detail: `API says ${view.state}, database ${job.state}` });
  const succeeded = attempts.filter((a) => a.outcome === 'succeeded');
  if (job.state !== 'succeeded') {
    if (view.result) out.push({ kind: 'result_mismatch', jobId: job.id, detail: `${job.state as JobState} job has a published result` });
    return;
  }
  const accepted = succeeded[0];
  const published = view.result ?? {};
  if (!accepted) return void out.push({ kind: 'result_mismatch', jobId: job.id, detail: 'succeeded without a succeeded attempt' });
  if (published.workerId !== accepted.workerId || published.attempt !== accepted.attempt || published.leaseToken !== accepted.leaseToken) {
    out.push({ kind: 'result_mismatch', jobId: job.id, detail: `published result of ${String(published.workerId)} attempt ${String(published.attempt)}, accepted attempt ${accepted.attempt} of ${accepted.workerId}` });
  }
}

/**
 * Each final status a worker was told was accepted is the attempt the database recorded with that
 * outcome, and at most one completion per job was accepted. Returns the jobs with more than one.
 */
function checkAcceptedStatuses(events: SimEvent[], attemptsByJob: Map<string, AttemptRow[]>, out: Violation[]): number {
  const completions = new Map<string, Set<string>>();
  for (const e of events) {
    if (e.type !== 'status_accepted') continue;
    const row = (attemptsByJob.get(e.fence.jobId) ?? []).find((a) => sameFence(a, e.fence));
    const expected = e.status === 'completed' ? ['succeeded'] : ['retrying', 'failed'];
    if (!row || !expected.includes(row.outcome)) {
      out.push({ kind: 'accepted_not_recorded', jobId: e.fence.jobId, detail: `${e.status} of attempt ${e.fence.attempt} by ${e.workerId} was accepted; the database has ${row?.outcome ?? 'no such attempt'}` });
    }
    if (e.status === 'completed') completions.set(e.fence.jobId, (completions.get(e.fence.jobId) ?? new Set()).add(`${e.fence.attempt}/${e.fence.leaseToken}`));
  }
  const jobs = new Set([...completions].filter(([, fences]) => fences.size > 1).map(([id]) => id));
  for (const [id, rows] of attemptsByJob) if (rows.filter((a) => a.outcome === 'succeeded').length > 1) jobs.add(id);
  for (const id of jobs) out.push({ kind: 'double_accepted', jobId: id, detail: 'more than one completion accepted' });
  return jobs.size;
}

/**
 * The attempts a death interrupted (a SIGKILLed process's workers, or a frozen worker's job) and
 * how long the orchestrator took to take each back and to finish the job with another attempt.
 * An attempt whose final status landed anyway (sent just before the kill, or a frozen worker back
 * before the reaper) was not taken back and is not counted.
 */
function recoveriesOf(events: SimEvent[], attempts: AttemptRow[], jobs: Map<string, JobRow>): Recovery[] {
  const TAKEN_BACK = new Set(['lease_lost', 'released', 'timed_out']);
  // A frozen worker whose process is then killed died once, at the earlier of the two.
  const deaths = new Map<AttemptRow, { at: number; how: Recovery['how'] }>();
  const died = (a: AttemptRow | undefined, at: number, how: Recovery['how']) => {
    if (!a || !TAKEN_BACK.has(a.outcome)) return;
    const earlier = deaths.get(a);
    if (!earlier || at < earlier.at) deaths.set(a, { at, how });
  };
  for (const e of events) {
    if (e.type === 'process_killed') {
      for (const a of attempts) if (a.workerId.startsWith(`${e.prefix}.`) && a.claimedAt <= e.at && a.endedAt >= e.at) died(a, e.at, 'sigkill');
    } else if (e.type === 'froze') {
      died(attempts.find((row) => sameFence(row, e.fence)), e.at, 'freeze');
    }
  }
  return [...deaths].map(([a, { at, how }]) => {
    const job = jobs.get(a.jobId);
    const finishedLater = job?.finishedAt != null && job.attempt > a.attempt && TERMINAL.has(job.state);
    return { jobId: a.jobId, how, requeueSec: (a.endedAt - at) / 1000, finishSec: finishedLater ? (job.finishedAt! - at) / 1000 : null };
  });
}

function countBy(values: string[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const v of values) out[v] = (out[v] ?? 0) + 1;
  return out;
}
