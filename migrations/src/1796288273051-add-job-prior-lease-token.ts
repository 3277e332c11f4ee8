import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * jobs.prior_lease_token: the lease token of the attempt whose completion claimed this one
 * (claimNext), so a retried completion is handed back exactly the job its first try leased.
 * Nullable with no default: adding it rewrites nothing.
 */
export class AddJobPriorLeaseToken1796288273051 implements MigrationInterface {
  name = 'AddJobPriorLeaseToken1796288273051';

  async up(db: QueryRunner): Promise<void> {
    await db.query(`ALTER TABLE "jobs" ADD "prior_lease_token" uuid`);
  }

  async down(db: QueryRunner): Promise<void> {
    await db.query(`ALTER TABLE "jobs" DROP COLUMN "prior_lease_token"`);
  }
}
