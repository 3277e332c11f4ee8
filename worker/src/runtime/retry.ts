/**
 * Capped exponential backoff with full jitter, for calls to an orchestrator that may be away:
 * delay n is uniform in [0, min(maxMs, baseMs * 2^n)], so a fleet that lost its orchestrator
 * does not come back in lock-step.
 */
export interface BackoffPolicy {
  baseMs: number;
  maxMs: number;
}

export function backoffDelay(policy: BackoffPolicy, failures: number, random: () => number = Math.random): number {
  const ceiling = Math.min(policy.maxMs, policy.baseMs * 2 ** Math.min(failures, 30));
  return Math.floor(random() * ceiling);
}

export type Sleep = (ms: number, signal?: AbortSignal) => Promise<void>;

/** Resolves after `ms`, or early (without throwing) when `signal` aborts. */
export const sleep: Sleep = (ms, signal) =>
  new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });

export interface RetryOptions {
  policy: BackoffPolicy;
  /** Whether a failure is worth another try (no answer, 5xx, 429). */
  retryable(error: unknown): boolean;
  /** Called before each wait; a place to log. */
  onRetry?(error: unknown, failures: number, delayMs: number): void;
  /** Stops retrying: the last error is thrown. */
  signal?: AbortSignal;
  sleep?: Sleep;
  random?: () => number;
}

/** Runs `op` until it succeeds, fails in a way not worth retrying, or `signal` aborts. */
export async function retry<T>(op: () => Promise<T>, options: RetryOptions): Promise<T> {
  const wait = options.sleep ?? sleep;
  for (let failures = 0; ; failures++) {
    try {
      return await op();
    } catch (error) {
      if (!options.retryable(error) || options.signal?.aborted) throw error;
      const delay = backoffDelay(options.policy, failures, options.random);
      options.onRetry?.(error, failures + 1, delay);
      await wait(delay, options.signal);
      if (options.signal?.aborted) throw error;
    }
  }
}
