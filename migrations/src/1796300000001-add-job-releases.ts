import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * jobs.releases: how many times workers that stopped gracefully handed the job back, so that such
 * releases back off and end at MAX_RELEASES instead of looping forever. Adding a column with a
 * constant default rewrites nothing.
 */
export class AddJobReleases1796300000001 implements MigrationInterface {
  name = 'AddJobReleases1796300000001';

  async up(db: QueryRunner): Promise<void> {
    await db.query(`ALTER TABLE "jobs" ADD "releases" integer NOT NULL DEFAULT '0'`);
  }

  async down(db: QueryRunner): Promise<void> {
    await db.query(`ALTER TABLE "jobs" DROP COLUMN "releases"`);
  }
}
