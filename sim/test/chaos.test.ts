import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { test } from 'node:test';
import { chaosScenario } from '../src/chaos';
import { runScenario } from '../src/scenario';
import { chaosLine, summaryLines } from '../src/summary';

/** worker/test/helpers/fleet-fixture.ts's FAST_FLEET: 1 s heartbeats, 5 s leases, a reaper every 200 ms. */
const FAST = { heartbeatSec: 1, leaseTtlSec: 5, reaperMs: 200 };
/**
 * Every death's job must be requeued, by the lease's expiry in the database and the reaper. How many
 * seconds that takes is a speed figure (`npm run chaos` prints requeue_p95_s against TTL + 5 s): with
 * a database restarting on a machine whose cores are busy elsewhere it stretches past 10 s. Here the
 * bound only catches a job left hanging.
 */
const REQUEUE_HANG_GUARD_SEC = 90;

test('short chaos: through worker deaths, drains, two orchestrator crashes and a database crash, every job ends once and is never held twice', { timeout: 300_000 }, async () => {
  const lines: string[] = [];
  const result = await runScenario(chaosScenario({
    timing: FAST,
    requeueBoundSec: REQUEUE_HANG_GUARD_SEC,
    workers: 6,
    processes: 3,
    jobs: 120,
    submitPerSecond: 30,
    jobBehaviour: { minMs: 300, maxMs: 1200, failRate: 0.05, retryableShare: 0.7, progressReports: 2 },
    killsPerMinute: 20,
    drainsPerMinute: 6,
    deadlineMs: 240_000, // a hang guard: about 25 s on an idle machine
    print: (line) => lines.push(line),
  }));
  const report = result.report;
  const context = [...lines, ...summaryLines(result)].join('\n');
  // Every invariant at once: nothing lost or unfinished, one accepted completion per job and the
  // published result is its own, no attempts overlapping, each death's job requeued.
  assert.deepEqual(report.violations, [], context);
  assert.equal(report.jobs, 120, context);
  assert.equal(report.doubleAccepted, 0, context);
  // The story happened: both crashes, the database restart, deaths of both kinds and their recovery.
  assert.equal(result.disruptions, 5, context);
  assert.ok(result.kills >= 1 && result.freezes >= 1, context);
  assert.ok(report.recoveries.length >= 1, context);
  assert.match(chaosLine(report), /^chaos jobs=120 lost=0 double_accepted=0 requeue_p95_s=[\d.]+ requeue_max_s=[\d.]+$/);
  // Kept when an assertion fails: the event log and the orchestrators' output explain it.
  rmSync(result.dir, { recursive: true, force: true });
});
