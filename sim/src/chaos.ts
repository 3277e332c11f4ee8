import type { FleetTiming, ScenarioOptions } from './scenario';

/** The orchestrator's defaults: 10 s heartbeats, 25 s leases, a reaper every second. */
export const DEFAULT_TIMING: FleetTiming = { heartbeatSec: 10, leaseTtlSec: 25, reaperMs: 1000 };

/**
 * How long a dead worker's job may wait to be requeued: its lease's time-to-live (counted from the
 * last renewal, at or before the death) plus 5 s for the reaper's tick and for an orchestrator or
 * database restart that happens to cover the moment the lease runs out: 30 s with the default 25 s lease.
 */
export function requeueBound(timing: FleetTiming): number {
  return timing.leaseTtlSec + 5;
}

/**
 * The chaos run: every worker in its own process, SIGKILLed at random throughout and restarted;
 * frozen workers coming back to report results that are no longer theirs; drains; the lone
 * orchestrator SIGKILLed and replaced by two replicas behind the balancer; PostgreSQL crashed and
 * restarted under both; one of the two SIGKILLed and replaced. `npm run chaos` runs it as it stands;
 * the test runs the same story small and fast.
 */
export function chaosScenario(overrides: Partial<ScenarioOptions> = {}): ScenarioOptions {
  const timing = overrides.timing ?? DEFAULT_TIMING;
  return {
    workers: 50,
    processes: 50,
    jobs: 2000,
    submitPerSecond: 25,
    jobBehaviour: { minMs: 1000, maxMs: 4000, failRate: 0.05, retryableShare: 0.7, progressReports: 2 },
    timing,
    killsPerMinute: 20,
    freezeShare: 0.3,
    drainsPerMinute: 4,
    sameIdsOnRestart: 0.3,
    replicas: 1,
    // Besides the random deaths, one of each kind at a set point, so that even a short run has both.
    disruptions: [
      { at: 0.1, kind: 'kill_worker_process' },
      { at: 0.15, kind: 'crash_orchestrator', restartAs: 2 },
      { at: 0.3, kind: 'freeze_worker' },
      { at: 0.4, kind: 'restart_postgres' },
      { at: 0.65, kind: 'crash_orchestrator', restartAs: 1 },
    ],
    quietAfter: 0.9,
    requeueBoundSec: requeueBound(timing),
    deadlineMs: 12 * 60_000,
    print: (line) => process.stdout.write(`${line}\n`),
    ...overrides,
  };
}
