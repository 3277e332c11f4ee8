/**
 * pg-boss 10 as the peers benchmark runs it. Its `work()` sleeps the rest of its polling interval
 * (0.5 s at least) after every fetch, busy or not, so 8 workers taking one job each could not pass
 * 16 jobs/s. The benchmark therefore drives pg-boss's own `fetch()` and `complete()` (the API its
 * documentation offers for managing one's own polling) in the loop the other contenders run: take
 * one job, run it, complete it, take the next at once; sleep the polling interval only when empty.
 */
import PgBoss from 'pg-boss';
import { inBatches, type NoopPayload } from './backlog';

const QUEUE = 'noop';
/** pg-boss's smallest polling interval; only an empty queue waits for it. */
const POLL_MS = 500;

/** Starts pg-boss with its default settings (it creates its schema) and creates the `noop` queue. */
export async function startPgBoss(url: string): Promise<PgBoss> {
  const boss = new PgBoss({ connectionString: url });
  // pg-boss emits errors rather than throwing them; a silent failure would look like a slow queue.
  boss.on('error', (error) => console.error(`pg-boss: ${error.message}`));
  await boss.start();
  await boss.createQueue(QUEUE);
  return boss;
}

/** Queues `total` `noop` jobs, `batch` per `insert` call. */
export async function addPgBossJobs(boss: PgBoss, total: number, batch = 1_000): Promise<void> {
  await inBatches(total, batch, (first, count, enqueuedAt) => boss.insert(
    Array.from({ length: count }, (_, k) => ({ name: QUEUE, data: { n: first + k, enqueuedAt } satisfies NoopPayload })),
  ));
}

/** Starts `concurrency` fetch/complete loops; `onStart` runs as each job's handler begins. Resolves once all have stopped. */
export function startPgBossWorkers(boss: PgBoss, concurrency: number, onStart: (payload: NoopPayload) => void): () => Promise<void> {
  let stopping = false;
  const loops = Array.from({ length: concurrency }, async () => {
    while (!stopping) {
      const [job] = await boss.fetch<NoopPayload>(QUEUE);
      if (!job) {
        await new Promise((r) => setTimeout(r, POLL_MS));
        continue;
      }
      onStart(job.data);
      await boss.complete(QUEUE, job.id);
    }
  });
  return async () => {
    stopping = true;
    await Promise.all(loops);
  };
}
