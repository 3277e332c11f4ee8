import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * A heartbeat rewrites its worker's row; a fleet of 10,000 does that 1,000 times a second. With no
 * index on a column a heartbeat changes, and free room left in each page, PostgreSQL updates the
 * row in place (a HOT update: no new index entries, dead versions pruned as pages are read), so the
 * table does not bloat between vacuums. The index on last_heartbeat_at served only the reaper's
 * once-a-second scan for silent workers, which reads the whole (small, unbloated) table as fast.
 */
export class HotWorkerHeartbeats1795342077530 implements MigrationInterface {
  name = 'HotWorkerHeartbeats1795342077530';

  async up(db: QueryRunner): Promise<void> {
    await db.query(`DROP INDEX "workers_online_heartbeat_idx"`);
    await db.query(`ALTER TABLE "workers" SET (fillfactor = 50, autovacuum_vacuum_scale_factor = 0.05, autovacuum_analyze_scale_factor = 0.05)`);
  }

  async down(db: QueryRunner): Promise<void> {
    await db.query(`ALTER TABLE "workers" RESET (fillfactor, autovacuum_vacuum_scale_factor, autovacuum_analyze_scale_factor)`);
    await db.query(`CREATE INDEX "workers_online_heartbeat_idx" ON "workers" ("last_heartbeat_at") WHERE state = 'online'`);
  }
}
