import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Indexes that keep the queue fast when the jobs table is large. The old claim index, (priority DESC, created_at, id),
 * made a claim walk every queued job ahead of the first it may take: jobs of another kind, for a GPU
 * class it lacks, or in backoff. With 50,000 such jobs at the head, a claim took ~100 ms.
 *
 * jobs_claim_idx leads with what a worker asks for, kind and GPU class (NULL as '', which no class
 * may be), so each (kind, class) stream the claim reads is already in its order; run_after follows
 * priority, so jobs still in backoff are skipped on the index (an index condition, no table read)
 * and the claim order within a priority is the time a job became claimable.
 *
 * jobs_matured_idx serves the reaper's announcement of jobs whose backoff just ended: a short range
 * of run_after, whatever the mix of kinds, classes and priorities.
 *
 * jobs_finished_idx lets the retention pass find the oldest finished jobs (finished_at is set exactly
 * while a job is finished) without reading the rest of the table.
 */
export class QueueIndexesForLargeTables1796300000000 implements MigrationInterface {
  name = 'QueueIndexesForLargeTables1796300000000';

  async up(db: QueryRunner): Promise<void> {
    await db.query(`CREATE INDEX "jobs_claim_idx" ON "jobs" ("kind", (coalesce("gpu_class", '')), "priority" DESC, "run_after", "id") WHERE state = 'queued'`);
    await db.query(`CREATE INDEX "jobs_matured_idx" ON "jobs" ("run_after") INCLUDE ("kind") WHERE state = 'queued'`);
    await db.query(`DROP INDEX "jobs_claimable_idx"`);
    await db.query(`CREATE INDEX "jobs_finished_idx" ON "jobs" ("finished_at") WHERE finished_at IS NOT NULL`);
  }

  async down(db: QueryRunner): Promise<void> {
    await db.query(`DROP INDEX "jobs_finished_idx"`);
    await db.query(`CREATE INDEX "jobs_claimable_idx" ON "jobs" ("priority" DESC, "created_at", "id") WHERE state = 'queued'`);
    await db.query(`DROP INDEX "jobs_matured_idx"`);
    await db.query(`DROP INDEX "jobs_claim_idx"`);
  }
}
