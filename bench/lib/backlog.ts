import { Client } from 'pg';

/** What every benchmark job carries: `enqueuedAt` is `performance.now()` in the process that enqueued it. */
export interface NoopPayload {
  n: number;
  enqueuedAt: number;
}

/**
 * Calls `insert` for `total` jobs, `batch` at a time, in order. Each batch is stamped with the time
 * just before it is sent, so a job's enqueue->start latency includes its wait behind earlier batches.
 */
export async function inBatches(
  total: number,
  batch: number,
  insert: (first: number, count: number, enqueuedAt: number) => Promise<unknown>,
): Promise<void> {
  for (let first = 0; first < total; first += batch) {
    await insert(first, Math.min(batch, total - first), performance.now());
  }
}

/** `VACUUM ANALYZE` (or plain `ANALYZE`) of one table, or of the whole database when `table` is absent. */
export async function vacuum(url: string, options: { table?: string; analyzeOnly?: boolean } = {}): Promise<void> {
  const client = new Client({ connectionString: url });
  await client.connect();
  try {
    await client.query(`${options.analyzeOnly ? 'ANALYZE' : 'VACUUM ANALYZE'} ${options.table ?? ''}`);
  } finally {
    await client.end();
  }
}
