/**
 * `npm run fuzz [-- --seed N] [--per-endpoint N] [--only TEXT]`: hostile input against a real orchestrator process
 * on a fresh embedded PostgreSQL, then against a queue-mode worker's POST /generate, 1,000 generated
 * requests per endpoint by default (see
 * docs/benchmarks.md, "Hostile input"). The same seed sends the same requests. The last line is
 * machine-readable; the exit status is 1 when anything but `requests` is above zero.
 */
import { randomInt } from 'node:crypto';
import { mergeReports, runFuzz, summaryLine, withFuzzSession } from '@avatar-fleet/orchestrator/dist/test/helpers/fuzz';
import { fuzzGenerate } from '@avatar-fleet/worker/dist/test/helpers/generate-fuzz';
import { startBenchDatabase } from './lib/bench-database';

function argument(name: string): string | undefined {
  const args = process.argv.slice(2);
  const at = args.indexOf(`--${name}`);
  return at >= 0 ? args[at + 1] : args.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);
}

function option(name: string, fallback: number): number {
  const value = argument(name);
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n < 0) {
    process.stderr.write(`fuzz: --${name} must be a non-negative integer, got ${JSON.stringify(value)}\n`);
    process.exit(2);
  }
  return n;
}

async function main(): Promise<number> {
  const seed = option('seed', randomInt(2 ** 31));
  const perEndpoint = option('per-endpoint', 1_000);
  // Only the endpoints whose name contains this text, e.g. `--only status`: to repeat a failure.
  const only = argument('only');
  console.log(`fuzz seed=${seed} per_endpoint=${perEndpoint} (repeat with: npm run fuzz -- --seed ${seed})`);
  const db = await startBenchDatabase();
  try {
    const started = performance.now();
    const options = { seed, perEndpoint, only, log: (line: string) => console.log(line) };
    // Every orchestrator endpoint, then a queue-mode worker's POST /generate against the same orchestrator.
    const report = await withFuzzSession(db.url, 1024 * 1024, async (session) =>
      mergeReports(await runFuzz(session.target, { ...options, bodyLimit: session.bodyLimit }), await fuzzGenerate(session, options)));
    for (const failure of report.failures) console.log(`FAIL ${failure}`);
    console.log(`unnamed_4xx=${report.unnamed4xx} no_answer=${report.noAnswer} seconds=${((performance.now() - started) / 1000).toFixed(1)}`);
    console.log(summaryLine(report));
    const bad = report.status5xx + report.crashes + report.stateChanges + report.leakedSecrets + report.unnamed4xx + report.noAnswer;
    return bad > 0 ? 1 : 0;
  } finally {
    await db.stop();
  }
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    console.error(error instanceof Error ? (error.stack ?? error.message) : String(error));
    process.exit(1);
  },
);
