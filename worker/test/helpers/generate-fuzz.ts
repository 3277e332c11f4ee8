/**
 * The hostile-input fuzzer (orchestrator/test/helpers/fuzz*.ts) aimed at a queue-mode worker's
 * `POST /generate`: the envelope Salad's sidecar forwards, of a job leased to this attempt. The
 * orchestrator of the session stays the judge of state: a refused envelope changes no table.
 */
import { ErrorCode } from '@avatar-fleet/contracts';
import { eventually, lipsyncJob } from '@avatar-fleet/orchestrator/dist/test/helpers/fixtures';
import { runFuzz, type FuzzReport } from '@avatar-fleet/orchestrator/dist/test/helpers/fuzz';
import type { FuzzSession } from '@avatar-fleet/orchestrator/dist/test/helpers/fuzz';
import { renewing, type Endpoint } from '@avatar-fleet/orchestrator/dist/test/helpers/fuzz-endpoints';
import type { FuzzOptions } from '@avatar-fleet/orchestrator/dist/test/helpers/fuzz-runner';
import { Lane, workerIdOf } from './fleet-fixture';

/** What a /generate refusal may say besides the fleet's own codes (see runtime/http-server.ts). */
const WORKER_CODES = new Set<string>([
  ...Object.values(ErrorCode), 'wrong_mode', 'not_ready', 'busy', 'duplicate', 'method_not_allowed', 'lease_lost', 'orchestrator_unreachable',
]);

/** Starts a queue-mode test worker against the session's orchestrator and fuzzes its `POST /generate`. */
export async function fuzzGenerate(session: FuzzSession, options: Omit<FuzzOptions, 'bodyLimit'>): Promise<FuzzReport> {
  const { target } = session;
  const lane = new Lane(() => session.orch.url, () => target.world.product);
  try {
    const worker = await lane.worker({ WORKER_MODE: 'queue', TEST_JOB_MS: '10' });
    const port = /ready mode=queue port=(\d+)/.exec(worker.output())![1]!;
    const workerId = workerIdOf(worker);
    // Its first heartbeat lands on its own time; after it none comes for HEARTBEAT_INTERVAL_SEC (300 s
    // in a fuzz session), so every later change to the workers table is a request's doing.
    await eventually(async () => ((await target.world.ops.listWorkers()).some((w) => w.id === workerId && w.telemetry) ? true : undefined));
    const input = lipsyncJob().input;
    const endpoint: Endpoint = {
      name: 'POST /generate (queue-mode worker)', method: 'POST', route: '/generate', auth: 'none',
      setup: (world) => renewing(
        () => world.leasedJob(workerId, lane.gpuClass),
        (lease) => ({ body: { jobId: lease.jobId, kind: 'lipsync', input, attempt: lease.attempt, leaseToken: lease.leaseToken, timeoutSec: 60 } }),
      ),
    };
    const alive = () => worker.proc.exitCode === null && worker.proc.signalCode === null;
    return await runFuzz(
      {
        ...target,
        url: `http://127.0.0.1:${port}`,
        codes: WORKER_CODES,
        alive: () => target.alive() && alive(),
        output: () => `${target.output()}\n${worker.output()}`,
      },
      // The worker reads bodies up to 1 MiB, whatever the orchestrator's limit.
      { ...options, bodyLimit: 1024 * 1024 },
      [endpoint],
    );
  } finally {
    await lane.cleanup();
  }
}
