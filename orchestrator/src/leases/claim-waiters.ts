/**
 * Parked long-poll claims of this process. A NOTIFY for a kind wakes the claimers that can run it;
 * a claimer registers before it tries to claim, so a job committed between its empty claim and
 * its wait still wakes it.
 */
export class ClaimWaiters {
  private readonly parked = new Set<Waiter>();

  get size(): number {
    return this.parked.size;
  }

  /** Registers interest in `kinds`; `wait()` resolves on a wake-up, at `timeoutMs`, or on abort. */
  register(kinds: readonly string[]): Waiter {
    const waiter = new Waiter(kinds, () => this.parked.delete(waiter));
    this.parked.add(waiter);
    return waiter;
  }

  wake(kind: string): void {
    for (const waiter of this.parked) if (waiter.kinds.includes(kind)) waiter.wake();
  }

  wakeAll(): void {
    for (const waiter of this.parked) waiter.wake();
  }
}

export class Waiter {
  private woken = false;
  private resolve: (() => void) | null = null;

  constructor(
    readonly kinds: readonly string[],
    private readonly onDone: () => void,
  ) {}

  wake(): void {
    this.woken = true;
    this.resolve?.();
  }

  /** Resolves true when woken (now or earlier), false on time-out or abort; re-arms itself afterwards. */
  wait(timeoutMs: number, signal?: AbortSignal): Promise<boolean> {
    if (this.woken || signal?.aborted) {
      const woken = this.woken;
      this.woken = false;
      return Promise.resolve(woken);
    }
    return new Promise<boolean>((resolve) => {
      const finish = (woken: boolean) => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        this.resolve = null;
        this.woken = false;
        resolve(woken);
      };
      const onAbort = () => finish(false);
      const timer = setTimeout(() => finish(false), Math.max(0, timeoutMs));
      signal?.addEventListener('abort', onAbort, { once: true });
      this.resolve = () => finish(true);
    });
  }

  done(): void {
    this.onDone();
  }
}
