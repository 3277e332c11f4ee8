/** SQL shared by the statements that send a running job back to the queue. */

/**
 * Exponential backoff with jitter in [50 %, 100 %], from the job's own policy columns:
 * base * 2^count, capped, where `count` is the column that counts this kind of setback.
 */
export function backoff(count: 'attempts_used' | 'lease_losses' | 'releases'): string {
  return `make_interval(secs => least(backoff_max_ms, backoff_base_ms * power(2, least(${count}, 30)))
  * (0.5 + random() * 0.5) / 1000.0)`;
}

/** Columns reset when a running job goes back to the queue, or ends other than by succeeding. */
export const BACK_TO_QUEUE = `lease_token = NULL, lease_expires_at = NULL, deadline_at = NULL, worker_id = NULL, started_at = NULL,
  prior_lease_token = NULL`;
