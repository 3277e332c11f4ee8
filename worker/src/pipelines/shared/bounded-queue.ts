/**
 * A bounded async queue between two pipeline stages: the producer waits when it is `capacity`
 * items ahead, so decode, inference and encode overlap while memory stays flat however long the
 * video is. `close()` ends it; `fail(error)` ends it with an error the consumer sees.
 */
export class BoundedQueue<T> implements AsyncIterable<T> {
  private readonly items: T[] = [];
  private closed = false;
  private error?: unknown;
  private readonly takers: Array<() => void> = [];
  private readonly putters: Array<() => void> = [];

  constructor(private readonly capacity: number) {}

  /** Resolves once the item is queued (waits while the queue is full). */
  async push(item: T): Promise<void> {
    while (this.items.length >= this.capacity && !this.closed) await new Promise<void>((r) => this.putters.push(r));
    if (this.error !== undefined) throw this.error;
    if (this.closed) throw new Error('push to a closed queue');
    this.items.push(item);
    this.takers.shift()?.();
  }

  close(): void {
    this.closed = true;
    this.wakeAll();
  }

  fail(error: unknown): void {
    this.error ??= error;
    this.close();
  }

  get size(): number {
    return this.items.length;
  }

  async *[Symbol.asyncIterator](): AsyncIterator<T> {
    for (;;) {
      if (this.error !== undefined) throw this.error;
      const item = this.items.shift();
      if (item !== undefined) {
        this.putters.shift()?.();
        yield item;
        continue;
      }
      if (this.closed) return;
      await new Promise<void>((r) => this.takers.push(r));
    }
  }

  private wakeAll(): void {
    for (const wake of this.takers.splice(0)) wake();
    for (const wake of this.putters.splice(0)) wake();
  }
}

/**
 * Runs stages concurrently; the first failure fails every queue (so no stage waits forever) and is
 * the error thrown. Resolves when all stages are done.
 */
export async function runStages(queues: BoundedQueue<unknown>[], stages: Array<() => Promise<void>>): Promise<void> {
  let first: unknown;
  await Promise.all(stages.map(async (stage) => {
    try {
      await stage();
    } catch (error) {
      first ??= error;
      for (const q of queues) q.fail(error);
    }
  }));
  if (first !== undefined) throw first;
}
