import type { FleetClient } from '@avatar-fleet/contracts';
import { lipsyncJob } from '@avatar-fleet/orchestrator/dist/test/helpers/fixtures';
import { isTransient } from '@avatar-fleet/worker/dist/src/runtime/delivery';
import { retry } from '@avatar-fleet/worker/dist/src/runtime/retry';

export interface SubmitOptions {
  fleet: FleetClient;
  jobs: number;
  /** Creates per second; the product sends its jobs over time, not all at once. */
  perSecond: number;
  /** Prefix of every job's idempotency key: how the audit finds this run's jobs. */
  keyPrefix: string;
  gpuClass: string;
  stopSignal?: AbortSignal;
}

export interface Submission {
  /** Job id by idempotency key, for every create the API acknowledged. */
  acknowledged: Map<string, string>;
  /** Keys whose create never succeeded (refused for good, or the run gave up first): each is a lost job. */
  refused: string[];
}

/**
 * The product backend: creates `jobs` lipsync jobs through the real FleetClient at a steady rate.
 * Each create carries an idempotency key and is retried through orchestrator and database
 * outages, so a create whose answer was lost is not made twice.
 */
export async function submitJobs(o: SubmitOptions): Promise<Submission> {
  const acknowledged = new Map<string, string>();
  const refused: string[] = [];
  const started = Date.now();
  const creates: Promise<void>[] = [];
  for (let i = 0; i < o.jobs; i++) {
    const key = `${o.keyPrefix}-${i}`;
    if (o.stopSignal?.aborted) {
      refused.push(key);
      continue;
    }
    const due = started + (i * 1000) / o.perSecond;
    if (due > Date.now()) await new Promise((r) => setTimeout(r, due - Date.now()));
    const request = lipsyncJob({ idempotencyKey: key, requirements: { gpuClass: o.gpuClass } });
    creates.push(
      retry(() => o.fleet.createJob(request), { policy: { baseMs: 250, maxMs: 4_000 }, retryable: isTransient, signal: o.stopSignal }).then(
        (job) => void acknowledged.set(key, job.id),
        () => void refused.push(key),
      ),
    );
  }
  await Promise.all(creates);
  return { acknowledged, refused };
}
