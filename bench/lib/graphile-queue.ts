/** graphile-worker as the benchmarks run it: default settings, a `noop` task, no log output. */
import { Logger, makeWorkerUtils, run, type Runner } from 'graphile-worker';
import { inBatches, type NoopPayload } from './backlog';

/** Migrates graphile-worker's schema if needed and queues `total` `noop` jobs, `batch` per `addJobs` call. */
export async function addGraphileJobs(url: string, total: number, batch = 1_000): Promise<void> {
  const utils = await makeWorkerUtils({ connectionString: url });
  try {
    await utils.migrate();
    await inBatches(total, batch, (first, count, enqueuedAt) => utils.addJobs(
      Array.from({ length: count }, (_, k) => ({ identifier: 'noop', payload: { n: first + k, enqueuedAt } satisfies NoopPayload })),
    ));
  } finally {
    await utils.release();
  }
}

/** Starts a runner with `concurrency` workers; `onStart` is the first thing the `noop` task does. */
export async function startGraphileWorkers(url: string, concurrency: number, onStart: (payload: NoopPayload) => void): Promise<Runner> {
  return run({
    connectionString: url,
    concurrency,
    noHandleSignals: true,
    logger: new Logger(() => () => undefined),
    taskList: {
      noop: async (payload) => {
        onStart(payload as NoopPayload);
      },
    },
  });
}
