import { FleetApiError, type StatusRequest, type StatusResponse, type WorkerClient } from '@avatar-fleet/contracts';
import type { RunningJob } from './job-runner';
import { errorMessage, type Logger } from './logger';
import { retry, type BackoffPolicy, type Sleep } from './retry';

export type DeliveryResult =
  | { kind: 'accepted'; response: StatusResponse }
  /** The orchestrator no longer counts this attempt (409) or never knew its job (404): the result did not land. */
  | { kind: 'stale'; code: string }
  /** The lease was reported lost while retrying, or the orchestrator refused the request as malformed. */
  | { kind: 'dropped'; reason: string };

export interface DeliveryOptions {
  policy?: BackoffPolicy;
  /** Stops retrying early (shutdown past its grace). */
  signal?: AbortSignal;
  sleep?: Sleep;
}

const DEFAULT_POLICY: BackoffPolicy = { baseMs: 500, maxMs: 30_000 };

/**
 * Delivers a job's final status, retrying with capped backoff and jitter for as long as the
 * orchestrator is unreachable: a finished result is kept until it is acknowledged, refused as
 * stale, or its lease is known lost. Every way it ends is logged; nothing is dropped silently.
 */
export async function deliverFinalStatus(
  client: WorkerClient,
  running: RunningJob,
  request: StatusRequest,
  log: Logger,
  options: DeliveryOptions = {},
): Promise<DeliveryResult> {
  // A failure says why on every line about it, so the worker's log alone explains a failed job.
  const fields = { job: running.job.id, attempt: running.job.attempt, status: request.status, code: request.error?.code, error: request.error?.message, retryable: request.error?.retryable };
  try {
    const response = await retry(() => client.status(running.job.id, request, options.signal), {
      policy: options.policy ?? DEFAULT_POLICY,
      // Once the lease is known lost nobody will accept this result; a forced shutdown also stops.
      signal: AbortSignal.any([givenUp(running), ...(options.signal ? [options.signal] : [])]),
      retryable: isTransient,
      onRetry: (error, failures, delayMs) => {
        if (failures === 1 || failures % 10 === 0) log.warn('final status not delivered yet; keeping the result and retrying', { ...fields, failures, delayMs, reason: errorMessage(error) });
      },
      sleep: options.sleep,
    });
    log.info('final status accepted', { ...fields, state: response.state });
    return { kind: 'accepted', response };
  } catch (error) {
    // A 404 (an envelope naming a job the orchestrator does not know) is as final as a stale lease: not worth a retry.
    if (error instanceof FleetApiError && (error.status === 409 || error.status === 404)) {
      log.warn('final status refused: this attempt is no longer current, its result is discarded', { ...fields, code: error.code });
      return { kind: 'stale', code: error.code };
    }
    const reason = running.abortReason === 'lease_lost' ? 'lease lost while the orchestrator was unreachable'
      : running.abortReason === 'shutdown' || options.signal?.aborted ? 'worker stopped before the orchestrator came back' : errorMessage(error);
    log.error('final status not delivered; result dropped', { ...fields, reason });
    return { kind: 'dropped', reason };
  }
}

/** A call worth repeating later: no answer, 5xx or 429. */
export function isTransient(error: unknown): boolean {
  return error instanceof FleetApiError && error.transient;
}

/** Aborts when the job's lease is reported lost or a forced shutdown releases it; not on cancel or time-out. */
function givenUp(running: RunningJob): AbortSignal {
  const lost = new AbortController();
  const check = () => {
    if (running.abortReason === 'lease_lost' || running.abortReason === 'shutdown') lost.abort();
  };
  check();
  running.controller.signal.addEventListener('abort', check, { once: true });
  return lost.signal;
}
