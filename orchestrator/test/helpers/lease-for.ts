import type { Pool } from 'pg';
import type { ClaimedJob } from '@avatar-fleet/contracts';
import { LeaseRepository } from '../../src/leases/lease.repository';

/**
 * Leases the best queued job for `workerId` on the orchestrator's side, with the claim statement
 * itself: what the queue-mode dispatcher does before it hands the envelope to Salad. Tests play that
 * dispatcher for worker processes whose token only the process knows. Null when nothing fits.
 */
export async function leaseFor(pool: Pool, workerId: string, leaseTtlSec: number): Promise<ClaimedJob | null> {
  const repo = new LeaseRepository();
  const caps = await repo.workerCaps(pool, workerId);
  if (!caps) throw new Error(`leaseFor: worker ${workerId} is not registered`);
  const [outcome] = await repo.claimBatch(pool, caps, [workerId], leaseTtlSec);
  return outcome?.kind === 'claimed' ? outcome.job : null;
}
