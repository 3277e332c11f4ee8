import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { JobView } from '@avatar-fleet/contracts';
import { audit, type ViolationKind } from '../src/audit';
import type { SimEvent } from '../src/events';
import type { AttemptRow, JobRow, RunFacts } from '../src/facts';

const T0 = Date.parse('2026-01-01T00:00:00Z');
const JOB = '00000000-0000-4000-8000-000000000001';
const first: AttemptRow = { jobId: JOB, attempt: 1, workerId: 'h1.w0', leaseToken: 'token-1', claimedAt: T0, endedAt: T0 + 27_000, outcome: 'lease_lost' };
const second: AttemptRow = { jobId: JOB, attempt: 2, workerId: 'h2.w0', leaseToken: 'token-2', claimedAt: T0 + 29_000, endedAt: T0 + 31_000, outcome: 'succeeded' };
const published = { workerId: 'h2.w0', jobId: JOB, attempt: 2, leaseToken: 'token-2' };

/** One job that lost its first worker to a SIGKILL 2 s after the claim and succeeded on a second. */
function run(change: { job?: Partial<JobRow>; attempts?: AttemptRow[]; result?: Record<string, unknown>; events?: SimEvent[] } = {}) {
  const job: JobRow = { id: JOB, key: 'k-0', state: 'succeeded', attempt: 2, leaseToken: 'token-2', leaseLosses: 1, result: published, errorCode: null, finishedAt: T0 + 31_000, ...change.job };
  const api = new Map([[JOB, { id: JOB, state: job.state, result: change.result ?? job.result } as JobView]]);
  const facts: RunFacts = { jobs: [job], attempts: change.attempts ?? [first, second], api };
  const events: SimEvent[] = change.events ?? [
    { type: 'process_killed', at: T0 + 2_000, prefix: 'h1' },
    { type: 'status_accepted', at: T0 + 31_000, sentAt: T0 + 30_990, workerId: 'h2.w0', fence: { jobId: JOB, attempt: 2, leaseToken: 'token-2' }, status: 'completed', state: 'succeeded' },
  ];
  return audit(facts, { acknowledged: new Map([['k-0', JOB]]), refused: [] }, events, { requeueBoundSec: 30 });
}

const kinds = (report: ReturnType<typeof audit>): ViolationKind[] => report.violations.map((v) => v.kind);

test('a job that lost its worker and succeeded elsewhere passes, with the time to requeue and to finish measured from the death', () => {
  const report = run();
  assert.deepEqual(report.violations, []);
  assert.deepEqual(report.recoveries, [{ jobId: JOB, how: 'sigkill', requeueSec: 25, finishSec: 29 }]);
  assert.equal(report.doubleAccepted, 0);
  assert.deepEqual(report.outcomes, { lease_lost: 1, succeeded: 1 });
});

test('an attempt claimed before the previous one ended is an overlap', () => {
  assert.deepEqual(kinds(run({ attempts: [first, { ...second, claimedAt: T0 + 26_000 }] })), ['overlap']);
});

test('a second accepted completion, in the database or in what a worker was told, is a double acceptance', () => {
  const twice = run({ attempts: [{ ...first, outcome: 'succeeded' }, second] });
  assert.equal(twice.doubleAccepted, 1);
  assert.ok(kinds(twice).includes('double_accepted'));
  const told = run({
    events: [
      { type: 'status_accepted', at: T0 + 20_000, sentAt: T0 + 19_000, workerId: 'h1.w0', fence: { jobId: JOB, attempt: 1, leaseToken: 'token-1' }, status: 'completed', state: 'succeeded' },
      { type: 'status_accepted', at: T0 + 31_000, sentAt: T0 + 30_990, workerId: 'h2.w0', fence: { jobId: JOB, attempt: 2, leaseToken: 'token-2' }, status: 'completed', state: 'succeeded' },
    ],
  });
  assert.equal(told.doubleAccepted, 1);
  // The first acceptance is also not what the database recorded for attempt 1.
  assert.deepEqual(kinds(told).sort(), ['accepted_not_recorded', 'double_accepted']);
});

test('a published result that is not the accepted attempt\'s is a mismatch', () => {
  assert.deepEqual(kinds(run({ result: { ...published, workerId: 'h1.w0', attempt: 1, leaseToken: 'token-1' } })), ['result_mismatch']);
});

test('a job missing, or not ended, is lost', () => {
  assert.deepEqual(kinds(run({ job: { state: 'running', result: null, finishedAt: null } })), ['lost']);
  const missing = audit({ jobs: [], attempts: [], api: new Map() }, { acknowledged: new Map([['k-0', JOB]]), refused: ['k-1'] }, [], { requeueBoundSec: 30 });
  assert.deepEqual(kinds(missing), ['lost', 'lost']);
});

test('a requeue slower than the bound is a violation; a frozen worker that was also killed counts once, from its freeze', () => {
  const slow = run({ attempts: [{ ...first, endedAt: T0 + 33_000 }, { ...second, claimedAt: T0 + 34_000 }] });
  assert.deepEqual(kinds(slow), ['slow_requeue']);
  const frozenThenKilled = run({
    events: [
      { type: 'froze', at: T0 + 1_000, workerId: 'h1.w0', fence: { jobId: JOB, attempt: 1, leaseToken: 'token-1' }, until: T0 + 40_000 },
      { type: 'process_killed', at: T0 + 2_000, prefix: 'h1' },
    ],
  });
  assert.deepEqual(frozenThenKilled.recoveries.map((r) => [r.how, r.requeueSec]), [['freeze', 26]]);
});
