/** Parked `GET /v1/jobs/{id}?waitMs=` requests of this process, woken by the job-finished NOTIFY. */
export class JobWaiters {
  private readonly waiting = new Map<string, Set<() => void>>();

  /** Resolves when `wake(id)` is called or after `timeoutMs`; call the returned cancel when done early. */
  wait(id: string, timeoutMs: number, signal?: AbortSignal): Promise<void> {
    return new Promise<void>((resolve) => {
      let set = this.waiting.get(id);
      if (!set) this.waiting.set(id, (set = new Set()));
      const done = () => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', done);
        set!.delete(done);
        if (set!.size === 0 && this.waiting.get(id) === set) this.waiting.delete(id);
        resolve();
      };
      const timer = setTimeout(done, timeoutMs);
      signal?.addEventListener('abort', done, { once: true });
      set.add(done);
    });
  }

  wake(id: string): void {
    const set = this.waiting.get(id);
    if (set) for (const done of [...set]) done();
  }

  wakeAll(): void {
    for (const id of [...this.waiting.keys()]) this.wake(id);
  }
}
