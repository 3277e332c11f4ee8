/**
 * `npm run bench:fleet`: 10,000 simulated workers heartbeating every 10 s (about 1,000 beats/s)
 * while jobs flow at a steady rate, against one orchestrator process and PostgreSQL on this
 * machine, for 5 minutes (FLEET_SECONDS). Reports the heartbeat round trip, workers wrongly
 * marked offline, the orchestrator's peak RSS, and the enqueue->claim latency of the job flow with
 * and without the heartbeat load (it should not change).
 * The last line is machine-readable; see docs/benchmarks.md.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import type { FleetClient, WorkerClient } from '@avatar-fleet/contracts';
import { lipsyncJob, registerWorker } from '@avatar-fleet/orchestrator/dist/test/helpers/fixtures';
import { INTERNAL_KEY, startOrchestratorProcess, type OrchestratorProcess } from '@avatar-fleet/orchestrator/dist/test/helpers/orchestrator-process';
import { startBenchDatabase } from './lib/bench-database';
import { postgresCpuSec, processCpuSec } from './lib/process-cpu';
import type { SwarmReport } from './lib/heartbeat-swarm';
import { percentile, round } from './lib/stats';

const WORKERS = Number(process.env.FLEET_WORKERS ?? 10_000);
const SECONDS = Number(process.env.FLEET_SECONDS ?? 300);
const BASELINE_SECONDS = Number(process.env.FLEET_BASELINE_SECONDS ?? 30);
const INTERVAL_SEC = 10;
/** Swarm processes: each sends half the beats, so neither is the bottleneck on 2 cores. */
const SWARMS = 2;
const JOBS_PER_SEC = 10;
const JOB_WORKERS = 8;
const JOB_HOLD_MS = 200;

/** Jobs submitted at a steady rate and run by a few real (HTTP) workers; records enqueue->claim. */
function jobFlow(fleet: FleetClient, worker: () => WorkerClient): { start(): void; take(): number[]; stop(): Promise<void> } {
  const claimedAt = new Map<string, number>();
  const enqueuedAt = new Map<string, number>();
  let samples: number[] = [];
  let running = true;
  let producer: NodeJS.Timeout | undefined;
  const record = (id: string) => {
    const a = enqueuedAt.get(id);
    const c = claimedAt.get(id);
    if (a === undefined || c === undefined) return;
    samples.push(c - a);
    enqueuedAt.delete(id);
    claimedAt.delete(id);
  };
  const loops: Promise<void>[] = [];
  const start = () => {
    for (let i = 0; i < JOB_WORKERS; i++) {
      loops.push((async () => {
        const client = worker();
        const id = await registerWorker(client, { gpuClass: 'flow', kinds: ['lipsync'] });
        let held: { jobId: string; attempt: number; leaseToken: string }[] = [];
        const beats = setInterval(() => void client.heartbeat(id, { activity: held.length ? 'busy' : 'idle', leases: held }).catch(() => undefined), INTERVAL_SEC * 1000);
        while (running) {
          const claim = await client.claim(id, 2_000);
          if (!claim) continue;
          claimedAt.set(claim.job.id, performance.now());
          record(claim.job.id);
          held = [{ jobId: claim.job.id, attempt: claim.job.attempt, leaseToken: claim.job.leaseToken }];
          await new Promise((r) => setTimeout(r, JOB_HOLD_MS));
          await client.status(claim.job.id, { attempt: claim.job.attempt, leaseToken: claim.job.leaseToken, status: 'completed', result: {} });
          held = [];
        }
        clearInterval(beats);
      })());
    }
    producer = setInterval(() => {
      const at = performance.now();
      void fleet.createJob(lipsyncJob({ requirements: { gpuClass: 'flow' } })).then((job) => {
        enqueuedAt.set(job.id, at);
        record(job.id);
      });
    }, 1000 / JOBS_PER_SEC);
  };
  return {
    start,
    take: () => {
      const out = samples;
      samples = [];
      return out;
    },
    async stop() {
      clearInterval(producer);
      running = false;
      await Promise.all(loops);
    },
  };
}

/** The orchestrator's resident set, sampled from /proc every 500 ms; returns the peak so far. */
function rssSampler(orchestrator: OrchestratorProcess): { peakMb(): number; stop(): void } {
  let peak = 0;
  const timer = setInterval(() => {
    const status = readFileSync(`/proc/${orchestrator.proc.pid}/status`, 'utf8');
    const kb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
    peak = Math.max(peak, kb / 1024);
  }, 500);
  return { peakMb: () => peak, stop: () => clearInterval(timer) };
}

function startSwarm(url: string, index: number, count: number): { proc: ChildProcess; registered: Promise<void>; report: Promise<SwarmReport> } {
  const proc = fork(path.join(__dirname, 'lib', 'heartbeat-swarm.js'), [url, INTERNAL_KEY, `swarm${index}`, String(count), String(INTERVAL_SEC)], { stdio: 'inherit' });
  const registered = new Promise<void>((resolve, reject) => {
    proc.on('message', (m: { type: string }) => m.type === 'registered' && resolve());
    proc.once('exit', (code) => reject(new Error(`swarm ${index} exited with ${code}`)));
  });
  const report = new Promise<SwarmReport>((resolve) => proc.on('message', (m: SwarmReport) => m.type === 'report' && resolve(m)));
  return { proc, registered, report };
}

/** Workers the reaper marked offline, from its log lines ("workers offline (no heartbeat): a, b"). */
function markedOffline(output: string): string[] {
  return [...output.matchAll(/workers offline \(no heartbeat\): (.+)/g)].flatMap((m) => m[1]!.split(', '));
}

async function main(): Promise<void> {
  const db = await startBenchDatabase();
  const orchestrator = await startOrchestratorProcess(db.url, { HEARTBEAT_INTERVAL_SEC: String(INTERVAL_SEC), LOG_LEVEL: 'warn' });
  const rss = rssSampler(orchestrator);
  const flow = jobFlow(orchestrator.fleet(), () => orchestrator.worker());
  try {
    console.log(`fleet: ${WORKERS} workers beating every ${INTERVAL_SEC} s for ${SECONDS} s; ${JOBS_PER_SEC} jobs/s run by ${JOB_WORKERS} workers; orchestrator and PostgreSQL on this machine`);
    flow.start();
    await new Promise((r) => setTimeout(r, BASELINE_SECONDS * 1000));
    const baseline = flow.take();
    const swarms = Array.from({ length: SWARMS }, (_, i) => startSwarm(orchestrator.url, i, Math.ceil(WORKERS / SWARMS)));
    const registering = performance.now();
    await Promise.all(swarms.map((s) => s.registered));
    console.log(`  registered ${WORKERS} workers in ${round((performance.now() - registering) / 1000, 1)} s`);
    flow.take(); // claims during registration are not the steady state
    const rssBefore = rss.peakMb();
    const pgPort = Number(new URL(db.url).port);
    const cpu0 = { orchestrator: processCpuSec(orchestrator.proc.pid!), postgres: postgresCpuSec(pgPort) };
    for (const s of swarms) s.proc.send({ type: 'beat' });
    await new Promise((r) => setTimeout(r, SECONDS * 1000));
    const loaded = flow.take();
    const cpu = { orchestrator: processCpuSec(orchestrator.proc.pid!) - cpu0.orchestrator, postgres: postgresCpuSec(pgPort) - cpu0.postgres };
    for (const s of swarms) s.proc.send({ type: 'stop' });
    const reports = await Promise.all(swarms.map((s) => s.report));
    const latencies = reports.flatMap((r) => r.latencies);
    const failed = reports.reduce((n, r) => n + r.failed, 0);
    const offline = markedOffline(orchestrator.output());
    const hbPerSec = latencies.length / SECONDS;
    const claim = (s: number[]) => `p50 ${round(percentile(s, 0.5), 1)} ms, p99 ${round(percentile(s, 0.99), 1)} ms (${s.length} jobs)`;
    console.log(`  heartbeats: ${latencies.length} answered (${round(hbPerSec, 0)}/s), ${failed} failed; round trip p50 ${round(percentile(latencies, 0.5), 1)} ms, ` +
      `p99 ${round(percentile(latencies, 0.99), 1)} ms, max ${round(latencies.reduce((a, b) => Math.max(a, b), 0), 1)} ms; worst send lag ${round(Math.max(...reports.map((r) => r.maxSendLagMs)), 1)} ms`);
    // Per beat, though the job flow's requests are in it too (10 jobs/s against 1,000 beats/s).
    const perBeat = (sec: number) => round((sec * 1000) / latencies.length, 3);
    console.log(`  CPU per heartbeat: orchestrator ${perBeat(cpu.orchestrator)} ms, PostgreSQL ${perBeat(cpu.postgres)} ms`);
    console.log(`  enqueue->claim: idle fleet ${claim(baseline)}; under the beats ${claim(loaded)}`);
    console.log(`  orchestrator peak RSS ${Math.round(rssBefore)} MB before the swarm, ${Math.round(rss.peakMb())} MB overall; workers marked offline: ${offline.length}`);
    console.log(`fleet workers=${WORKERS} hb_per_s=${Math.round(hbPerSec)} hb_p99_ms=${round(percentile(latencies, 0.99), 1)} false_offline=${offline.length} rss_mb=${Math.round(rss.peakMb())}`);
    for (const s of swarms) s.proc.kill();
  } finally {
    rss.stop();
    await flow.stop();
    await orchestrator.stop();
    await db.stop();
  }
}

main().catch((error: Error) => {
  console.error(error.stack ?? error.message);
  process.exit(1);
});
