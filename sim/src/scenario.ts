import { setMaxListeners } from 'node:events';
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Pool } from 'pg';
import { startBenchDatabase } from '@avatar-fleet/bench/dist/lib/bench-database';
import { API_KEY, INTERNAL_KEY, OPERATOR_KEY } from '@avatar-fleet/orchestrator/dist/test/helpers/orchestrator-process';
import { FleetClient, OperatorClient } from '@avatar-fleet/contracts';
import { audit, type AuditReport } from './audit';
import { EventLog } from './events';
import { ChaosMonkey } from './chaos-monkey';
import { countByState, loadFacts } from './facts';
import { HostPool } from './host-pool';
import { Replicas } from './replicas';
import type { JobBehaviour } from './sim-worker';
import { submitJobs } from './submitter';

/** The orchestrator's timing settings for a run (its environment variables). */
export interface FleetTiming {
  heartbeatSec: number;
  leaseTtlSec: number;
  reaperMs: number;
}

/** Something done to the orchestrator or the database once a share `at` (0..1) of the jobs has ended. */
export type Disruption =
  /** SIGKILL the oldest orchestrator replica, then start `restartAs` new ones. */
  | { at: number; kind: 'crash_orchestrator'; restartAs: number }
  /** Restart PostgreSQL under everyone, the way a crash does (immediate shutdown, WAL recovery). */
  | { at: number; kind: 'restart_postgres' }
  /** One worker death at a set point, besides the random ones: a process SIGKILL or a freeze. */
  | { at: number; kind: 'kill_worker_process' | 'freeze_worker' };

export interface ScenarioOptions {
  workers: number;
  /** Worker processes; the workers are spread evenly over them. */
  processes: number;
  jobs: number;
  submitPerSecond: number;
  jobBehaviour: JobBehaviour;
  timing: FleetTiming;
  /** Worker deaths per minute: SIGKILLs of a whole process, or (a `freezeShare` of them) a worker that stops beating mid-job. */
  killsPerMinute: number;
  freezeShare: number;
  drainsPerMinute: number;
  sameIdsOnRestart: number;
  replicas: number;
  disruptions: Disruption[];
  /** Deaths and drains stop once this share of the jobs has ended, so the tail is not all recovery. */
  quietAfter: number;
  /** A death's job must be requeued within this many seconds. */
  requeueBoundSec: number;
  /** The run gives up (and reports what is unfinished as lost) after this long. */
  deadlineMs: number;
  print(line: string): void;
}

export interface ScenarioResult {
  report: AuditReport;
  seconds: number;
  kills: number;
  freezes: number;
  drains: number;
  /** Disruptions carried out, of those the scenario listed. */
  disruptions: number;
  /** Orchestrator starts that failed and were tried again. */
  startFailures: string[];
  /** Connections the balancer gave each replica. */
  split: number[];
  /** The run's folder: events.jsonl and each orchestrator replica's output. */
  dir: string;
}

/**
 * One simulated run: a fresh PostgreSQL, orchestrator replicas behind a balancer, worker
 * processes, a product submitting jobs, deaths and drains at random, and the given disruptions;
 * then every worker stops and the run is audited from the database, the API and the event log.
 */
export async function runScenario(o: ScenarioOptions): Promise<ScenarioResult> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'avatar-fleet-sim-'));
  const log = new EventLog(path.join(dir, 'events.jsonl'));
  const started = Date.now();
  const database = (await startBenchDatabase()) as Awaited<ReturnType<typeof startBenchDatabase>> & { restart(mode: 'immediate'): Promise<void> };
  const pool = new Pool({ connectionString: database.url, max: 2 });
  // The driver's own connections die with the database restart like everyone's; it just asks again.
  pool.on('error', () => undefined);
  const replicas = new Replicas(database.url, {
    HEARTBEAT_INTERVAL_SEC: String(o.timing.heartbeatSec), LEASE_TTL_SEC: String(o.timing.leaseTtlSec), REAPER_INTERVAL_MS: String(o.timing.reaperMs),
  }, log, dir);
  let hosts: HostPool | undefined;
  try {
    const url = await replicas.open(o.replicas);
    const fleet = new FleetClient({ baseUrl: url, apiKey: API_KEY });
    const gpuClass = 'sim';
    const processes = Math.min(o.processes, o.workers);
    hosts = new HostPool({
      url, apiKey: INTERNAL_KEY, gpuClass, jobs: o.jobBehaviour, workers: o.workers, processes, sameIdsOnRestart: o.sameIdsOnRestart,
    }, log);
    await hosts.start();
    o.print(`sim: ${hosts.live.size} workers in ${processes} processes, ${o.replicas} orchestrator replica(s); events in ${dir}`);

    const keyPrefix = `sim-${path.basename(dir)}`;
    // At the deadline the product gives up on creates still retrying: those count as lost.
    const giveUp = new AbortController();
    // Every create retrying through an outage waits on this signal: hundreds at once is expected.
    setMaxListeners(0, giveUp.signal);
    const submission = submitJobs({ fleet, jobs: o.jobs, perSecond: o.submitPerSecond, keyPrefix, gpuClass, stopSignal: giveUp.signal });
    let submitted = false;
    void submission.then(() => (submitted = true));
    const chaos = new ChaosMonkey(o, hosts, replicas, database, new OperatorClient({ baseUrl: url, apiKey: OPERATOR_KEY }), log);
    // Progress comes from the database, read while everything else goes on; it drives the chaos.
    while (Date.now() - started < o.deadlineMs) {
      const states = await countByState(pool, keyPrefix).catch(() => null);
      if (states) {
        const total = Object.values(states).reduce((a, b) => a + b, 0);
        const ended = (states.succeeded ?? 0) + (states.failed ?? 0) + (states.cancelled ?? 0);
        chaos.tick(ended / o.jobs, states);
        if (submitted && ended === total) break;
      }
      await new Promise((r) => setTimeout(r, 250));
    }
    giveUp.abort();
    await chaos.settle();
    await hosts.stop();
    hosts = undefined;
    const facts = await loadFacts(pool, fleet, keyPrefix);
    const report = audit(facts, await submission, log.events, { requeueBoundSec: o.requeueBoundSec });
    for (const crash of replicas.crashes) report.violations.push({ kind: 'crash', detail: `an orchestrator replica died on its own: ${crash}` });
    return {
      report, seconds: (Date.now() - started) / 1000, kills: chaos.kills, freezes: chaos.freezes, drains: chaos.drains, disruptions: chaos.disruptions, startFailures: replicas.startFailures,
      split: [...replicas.split().values()], dir,
    };
  } finally {
    await hosts?.stop();
    await replicas.close();
    await pool.end();
    await database.stop();
  }
}
