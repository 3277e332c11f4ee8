/**
 * A child process of `npm run bench:fleet`: registers `count` simulated workers with the real
 * WorkerClient and then sends each one's heartbeat every `intervalSec`, phases spread evenly, so
 * the orchestrator sees a steady count/intervalSec beats per second, as from a real fleet. It
 * records every beat's round trip and how late each was sent (a late sender would make a slow
 * orchestrator look fast), and answers the parent over IPC.
 *
 *   parent -> child  { type: 'beat' }            start beating (after 'registered')
 *   parent -> child  { type: 'stop' }            stop and report
 *   child -> parent  { type: 'registered' } | { type: 'report', ... }
 */
import { WorkerClient, type Telemetry } from '@avatar-fleet/contracts';
import { workerRegistration } from '@avatar-fleet/orchestrator/dist/test/helpers/fixtures';

export interface SwarmReport {
  type: 'report';
  sent: number;
  failed: number;
  /** Round trips in ms, one per answered beat. */
  latencies: number[];
  /** The worst delay between a beat's due time and its sending, ms. */
  maxSendLagMs: number;
}

const [url, apiKey, prefix, countArg, intervalArg] = process.argv.slice(2);
const count = Number(countArg);
const intervalMs = Number(intervalArg) * 1000;
const client = new WorkerClient({ baseUrl: url!, apiKey: apiKey! });
const ids = Array.from({ length: count }, (_, i) => `${prefix}-${i}`);

/** What an idle RTX 4090 box reports; a little noise so rows differ. */
function telemetry(): Telemetry {
  return {
    gpuUtilPct: Math.round(Math.random() * 5), gpuMemUsedMb: 900 + Math.round(Math.random() * 50), gpuMemTotalMb: 24_564,
    gpuTempC: 38 + Math.round(Math.random() * 4), gpuPowerW: 30, cpuPct: Math.round(Math.random() * 10), memUsedMb: 5_000, memTotalMb: 64_000,
  };
}

async function registerAll(): Promise<void> {
  let next = 0;
  // 16 at a time: fast, without a burst that would itself look like an outage.
  await Promise.all(Array.from({ length: 16 }, async () => {
    while (next < ids.length) {
      const workerId = ids[next++]!;
      await client.register(workerRegistration({ workerId, provider: 'vast', gpuClass: 'swarm', kinds: ['lipsync'], version: 'swarm' }));
    }
  }));
}

function beat(): () => SwarmReport {
  const latencies: number[] = [];
  let sent = 0;
  let failed = 0;
  let maxSendLagMs = 0;
  const started = performance.now();
  let due = 0; // beats sent so far; beat k is worker k % count, due at started + k * intervalMs / count
  const step = intervalMs / count;
  // One 5 ms timer sends whatever fell due, rather than 10,000 timers.
  const timer = setInterval(() => {
    const now = performance.now();
    while (started + due * step <= now) {
      maxSendLagMs = Math.max(maxSendLagMs, now - (started + due * step));
      const workerId = ids[due % count]!;
      due++;
      sent++;
      const at = performance.now();
      client.heartbeat(workerId, { activity: 'idle', leases: [], telemetry: telemetry(), executionProvider: 'cuda' }).then(
        () => latencies.push(performance.now() - at),
        () => failed++,
      );
    }
  }, 5);
  return () => {
    clearInterval(timer);
    return { type: 'report', sent, failed, latencies, maxSendLagMs };
  };
}

let stop: (() => SwarmReport) | undefined;
process.on('message', (message: { type: string }) => {
  if (message.type === 'beat') stop = beat();
  if (message.type === 'stop' && stop) {
    const report = stop();
    // Beats still in flight get a moment to land before the report goes.
    setTimeout(() => process.send!(report, () => process.exit(0)), 2_000);
  }
});
registerAll().then(
  () => process.send!({ type: 'registered' }),
  (error: Error) => {
    console.error(`swarm ${prefix}: registration failed: ${error.message}`);
    process.exit(1);
  },
);
