export interface CoalescerOptions {
  /** Most requests handed to one execution. */
  maxBatch: number;
  /** Executions in flight at once; requests arriving meanwhile wait and share the next one. */
  maxInFlight: number;
}

interface Pending<Req, Res> {
  req: Req;
  resolve: (value: Res) => void;
  reject: (error: unknown) => void;
}

/**
 * Coalesces concurrent requests into batches: while one execution is in flight, new requests
 * queue up and go together in the next. With `execute` issuing one SQL statement per batch, N
 * concurrent claims or completions cost one round trip and one commit instead of N; every commit
 * is a WAL flush and every round trip a pair of syscalls, which is what bounds a protocol that
 * commits once per HTTP request (README, Benchmarks, has the figures).
 */
export class Coalescer<Req, Res> {
  private readonly queue: Pending<Req, Res>[] = [];
  private inFlight = 0;

  constructor(
    private readonly execute: (batch: Req[]) => Promise<Res[]>,
    private readonly options: CoalescerOptions = { maxBatch: 128, maxInFlight: 1 },
  ) {}

  submit(req: Req): Promise<Res> {
    return new Promise<Res>((resolve, reject) => {
      this.queue.push({ req, resolve, reject });
      this.pump();
    });
  }

  private pump(): void {
    while (this.inFlight < this.options.maxInFlight && this.queue.length > 0) {
      const batch = this.queue.splice(0, this.options.maxBatch);
      this.inFlight++;
      this.execute(batch.map((p) => p.req))
        .then(
          (results) => {
            if (results.length !== batch.length) throw new Error(`batch of ${batch.length} answered with ${results.length} results`);
            batch.forEach((p, i) => p.resolve(results[i]!));
          },
          (error: unknown) => batch.forEach((p) => p.reject(error)),
        )
        .catch((error: unknown) => batch.forEach((p) => p.reject(error)))
        .finally(() => {
          this.inFlight--;
          this.pump();
        });
    }
  }
}
