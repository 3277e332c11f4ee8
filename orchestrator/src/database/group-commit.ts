import type { Pool, PoolClient } from 'pg';

/** One unit of work run inside a shared transaction. It must be safe to run again on its own. */
export type TxOp<T> = (client: PoolClient) => Promise<T>;

interface Pending {
  op: TxOp<unknown>;
  resolve: (value: unknown) => void;
  reject: (error: unknown) => void;
}

export interface GroupCommitOptions {
  /** Most operations in one transaction. */
  maxBatch: number;
  /** Transactions in flight at once; operations arriving meanwhile wait and share the next one. */
  maxInFlight: number;
}

/**
 * Group commit: operations that arrive while a transaction is in flight are run together in the
 * next one, so N concurrent claims or completions cost one WAL flush instead of N. Every commit is
 * a disk flush, which is what bounds a one-commit-per-request protocol (see docs/benchmarks.md).
 *
 * Operations run one after another on one connection, so each sees the writes of the ones before it
 * (two claims in one batch never pick the same row). If the batch fails (a deadlock with another
 * batch, a constraint error), it is rolled back and each operation is retried in a transaction of
 * its own, so one bad operation never fails its neighbours.
 */
export class GroupCommit {
  private readonly queue: Pending[] = [];
  private inFlight = 0;

  constructor(
    private readonly pool: Pool,
    private readonly options: GroupCommitOptions = { maxBatch: 64, maxInFlight: 2 },
  ) {}

  run<T>(op: TxOp<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.queue.push({ op, resolve: resolve as (v: unknown) => void, reject });
      this.pump();
    });
  }

  private pump(): void {
    while (this.inFlight < this.options.maxInFlight && this.queue.length > 0) {
      const batch = this.queue.splice(0, this.options.maxBatch);
      this.inFlight++;
      void this.execute(batch).finally(() => {
        this.inFlight--;
        this.pump();
      });
    }
  }

  private async execute(batch: Pending[]): Promise<void> {
    let results: unknown[];
    try {
      results = await this.transaction(batch.map((p) => p.op));
    } catch (error) {
      if (batch.length === 1) {
        batch[0]!.reject(error);
        return;
      }
      await Promise.all(batch.map((p) => this.execute([p])));
      return;
    }
    batch.forEach((p, i) => p.resolve(results[i]));
  }

  private async transaction(ops: TxOp<unknown>[]): Promise<unknown[]> {
    const client = await this.pool.connect();
    let broken = false;
    try {
      await client.query('BEGIN');
      const results: unknown[] = [];
      for (const op of ops) results.push(await op(client));
      await client.query('COMMIT');
      return results;
    } catch (error) {
      try {
        await client.query('ROLLBACK');
      } catch {
        broken = true;
      }
      throw error;
    } finally {
      client.release(broken);
    }
  }
}
