import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Indexes that keep the queue fast when the jobs table is large. The old claim index, (priority
 * DESC, created_at, id), made a claim read the table row of every queued job ahead of the first it
 * may take (jobs of another kind, for a GPU class it lacks, or in backoff) to check it: with 50,000
 * such jobs at the head, a claim took ~100 ms.
 *
 * jobs_claim_idx holds what those checks read: run_after, kind and GPU class (NULL as '', which no
 * class may be). They become index conditions, checked on the index entries without reading the
 * table, and PostgreSQL 18's skip scan jumps over whole runs of entries that fail them: 0.4 ms for
 * the same claim. Ordered by run_after within a priority, a job waits its turn from when it became
 * claimable (created, or its backoff over). A claim over one stream per (kind, class) was tried
 * too: as fast on a large queue, but 0.2 ms more per claim on a small one: a third of the dispatch
 * benchmark's throughput lost.
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
    await db.query(`CREATE INDEX "jobs_claim_idx" ON "jobs" ("priority" DESC, "run_after", "kind", (coalesce("gpu_class", '')), "id") WHERE state = 'queued'`);
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
