/**
 * `npm run chaos`: the chaos run (see chaos.ts) against real processes on this machine. Prints
 * the summary, then the last line
 * `chaos jobs=<n> lost=<n> double_accepted=<n> requeue_p95_s=<n> requeue_max_s=<n>`,
 * and exits 1 on any violation. CHAOS_WORKERS and CHAOS_JOBS change the size.
 */
import { chaosScenario } from '../chaos';
import { runScenario } from '../scenario';
import { chaosLine, summaryLines } from '../summary';

async function main(): Promise<void> {
  const workers = Number(process.env.CHAOS_WORKERS ?? 50);
  const scenario = chaosScenario({ workers, processes: workers, jobs: Number(process.env.CHAOS_JOBS ?? 2000) });
  const result = await runScenario(scenario);
  for (const line of summaryLines(result)) console.log(line);
  console.log(chaosLine(result.report));
  process.exit(result.report.violations.length ? 1 : 0);
}

main().catch((error: unknown) => {
  console.error(`chaos failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
  process.exit(1);
});
