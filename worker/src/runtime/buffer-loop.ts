import { MAX_CLAIM_WAIT_MS, type ClaimedJob } from '@avatar-fleet/contracts';
import type { FleetWorker } from './fleet-worker';
import { RunningJob } from './job-runner';
import { errorMessage } from './logger';
import { backoffDelay, sleep, type BackoffPolicy } from './retry';

const CLAIM_WAIT_MS = Math.min(20_000, MAX_CLAIM_WAIT_MS);
const OUTAGE_POLICY: BackoffPolicy = { baseMs: 500, maxMs: 30_000 };

/**
 * Buffer mode: each slot long-polls for a job, runs it, and reports it, asking in the same call for
 * the next job that is already waiting (claimNext with no wait); only an idle slot long-polls.
 * Claiming stops on drain or stop; a claim in flight is abandoned by hanging up (the server then
 * leaves the job queued), and deregistering releases anything leased in that instant.
 */
export async function runBufferLoop(worker: FleetWorker): Promise<void> {
  await Promise.all(Array.from({ length: worker.config.slots }, (_, slot) => runSlot(worker, slot)));
}

async function runSlot(worker: FleetWorker, slot: number): Promise<void> {
  const log = worker.log.child({ slot });
  let next: ClaimedJob | null = null;
  let failures = 0;
  let idleReason: string | null = null;
  while (!worker.stopRequested) {
    if (worker.draining && !next) {
      await untilChanged(worker);
      continue;
    }
    let job = next;
    next = null;
    if (!job) {
      try {
        job = await claim(worker);
        if (failures > 0) log.info('claims reach the orchestrator again', { after: failures });
        failures = 0;
      } catch (error) {
        // Includes "not online" after a long freeze: the next heartbeat brings the worker back (or
        // re-registers it when idle), so the claim just backs off and tries again.
        if (worker.stopRequested) break;
        failures++;
        const delayMs = backoffDelay(OUTAGE_POLICY, failures);
        if (failures === 1 || failures % 10 === 0) log.warn('claim failed; retrying', { failures, delayMs, reason: errorMessage(error) });
        await sleep(delayMs, worker.stopSignal);
        continue;
      }
      if (!job) {
        // Once per new reason, not once per empty long poll.
        const reason = worker.client.noJobReason;
        if (reason && reason !== idleReason) log.info('no job fits this worker', { reason });
        idleReason = reason;
        continue;
      }
      idleReason = null;
    }
    const { delivery } = await worker.execute(new RunningJob(job), () =>
      (worker.stopRequested || worker.draining ? undefined : { workerId: worker.registration!.workerId, waitMs: 0 }));
    if (delivery?.kind === 'accepted' && delivery.response.next) {
      next = delivery.response.next;
      // Stopped or drained while that call was in flight: hand the job back through deregister/expiry
      // rather than start it; a drained worker runs it (it was leased before the drain landed).
      if (worker.stopRequested) break;
    }
  }
}

/** One long-poll claim, hung up when the worker starts stopping. */
async function claim(worker: FleetWorker): Promise<ClaimedJob | null> {
  const hangUp = new AbortController();
  const unsubscribe = worker.onStateChange(() => {
    if (worker.stopRequested || worker.draining) hangUp.abort();
  });
  try {
    const reply = await worker.client.claim(worker.registration!.workerId, CLAIM_WAIT_MS, hangUp.signal);
    return reply?.job ?? null;
  } catch (error) {
    if (hangUp.signal.aborted) return null;
    throw error;
  } finally {
    unsubscribe();
  }
}

function untilChanged(worker: FleetWorker): Promise<void> {
  return new Promise((resolve) => {
    const unsubscribe = worker.onStateChange(() => {
      unsubscribe();
      resolve();
    });
  });
}
