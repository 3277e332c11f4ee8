/**
 * `npm run sim -- --workers N --jobs M [options]`: a simulated fleet against a real orchestrator
 * (see scenario.ts). Prints progress and a summary; exits 1 if an invariant broke, 2 on bad arguments.
 */
import { parseArgs } from 'node:util';
import { DEFAULT_TIMING, requeueBound } from '../chaos';
import { runScenario, type ScenarioOptions } from '../scenario';
import { summaryLines } from '../summary';

const USAGE = `usage: npm run sim -- --workers N --jobs M [options]
  --workers N          simulated workers (default 8)
  --jobs M             jobs the product submits (default 200)
  --processes P        worker processes the workers are spread over (default min(N, 8))
  --kill-rate K        worker deaths per minute: a process SIGKILLed (and restarted), or a frozen worker (default 0)
  --freeze-share S     share of deaths that are a worker freezing mid-job rather than a SIGKILL (default 0.5)
  --fail-rate F        share of attempts that fail, 70 % of them retryably (default 0.05)
  --drain-rate D       drain commands per minute, sent through the product API (default 0)
  --job-ms MIN-MAX     how long an attempt runs (default 500-3000)
  --rate R             jobs created per second (default 20)
  --replicas R         orchestrator replicas behind the balancer (default 1)
  --heartbeat-sec, --lease-ttl-sec, --reaper-ms   orchestrator timing (default 10, 25, 1000)`;

function options(argv: string[]): ScenarioOptions {
  const { values } = parseArgs({
    args: argv,
    options: Object.fromEntries(
      ['workers', 'jobs', 'processes', 'kill-rate', 'freeze-share', 'fail-rate', 'drain-rate', 'job-ms', 'rate', 'replicas', 'heartbeat-sec', 'lease-ttl-sec', 'reaper-ms']
        .map((name) => [name, { type: 'string' as const }]),
    ),
  });
  const number = (name: string, fallback: number, max = Number.MAX_SAFE_INTEGER): number => {
    const value = values[name] === undefined ? fallback : Number(values[name]);
    if (!Number.isFinite(value) || value < 0 || value > max) throw new Error(`--${name} must be a number from 0 to ${max}`);
    return value;
  };
  const [minMs, maxMs] = String(values['job-ms'] ?? '500-3000').split('-').map(Number);
  if (!(minMs! >= 0 && maxMs! >= minMs!)) throw new Error('--job-ms must be MIN-MAX in milliseconds');
  const workers = Math.max(1, number('workers', 8));
  const timing = { heartbeatSec: number('heartbeat-sec', DEFAULT_TIMING.heartbeatSec), leaseTtlSec: number('lease-ttl-sec', DEFAULT_TIMING.leaseTtlSec), reaperMs: number('reaper-ms', DEFAULT_TIMING.reaperMs) };
  return {
    workers,
    processes: Math.max(1, number('processes', Math.min(workers, 8))),
    jobs: Math.max(1, number('jobs', 200)),
    submitPerSecond: Math.max(0.1, number('rate', 20)),
    jobBehaviour: { minMs: minMs!, maxMs: maxMs!, failRate: number('fail-rate', 0.05, 1), retryableShare: 0.7, progressReports: 2 },
    timing,
    killsPerMinute: number('kill-rate', 0),
    freezeShare: number('freeze-share', 0.5, 1),
    drainsPerMinute: number('drain-rate', 0),
    sameIdsOnRestart: 0.3,
    replicas: Math.max(1, number('replicas', 1)),
    disruptions: [],
    quietAfter: 0.9,
    requeueBoundSec: requeueBound(timing),
    deadlineMs: 60 * 60_000,
    print: (line) => process.stdout.write(`${line}\n`),
  };
}

async function main(): Promise<void> {
  let scenario: ScenarioOptions;
  try {
    scenario = options(process.argv.slice(2));
  } catch (error) {
    console.error(`${(error as Error).message}\n${USAGE}`);
    process.exit(2);
  }
  const result = await runScenario(scenario);
  for (const line of summaryLines(result)) console.log(line);
  process.exit(result.report.violations.length ? 1 : 0);
}

main().catch((error: unknown) => {
  console.error(`sim failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
  process.exit(1);
});
