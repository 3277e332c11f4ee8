import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Per-worker credentials. Registering issues a token; the row keeps its SHA-256 (`token_hash`) and
 * the previous registration's (`prior_token_hash`), so a process still holding the older token is
 * told it is stale instead of "unknown key". `epoch` counts registrations of the id: a newer one
 * fences older processes out of deregister and re-register. `revoked_at` is an operator's revocation.
 * A row with no token is a legacy host that authenticates with the shared key. Nothing here
 * rewrites the table, and heartbeats (which change none of these columns) stay HOT updates.
 *
 * jobs_created_idx: operators list every owner's jobs newest first, which jobs_owner_created_idx
 * (owner first) cannot serve without sorting the whole table.
 */
export class AddWorkerCredentials1796400000000 implements MigrationInterface {
  name = 'AddWorkerCredentials1796400000000';

  async up(db: QueryRunner): Promise<void> {
    await db.query(`ALTER TABLE "workers" ADD "epoch" integer NOT NULL DEFAULT '0'`);
    await db.query(`ALTER TABLE "workers" ADD "token_hash" bytea`);
    await db.query(`ALTER TABLE "workers" ADD "prior_token_hash" bytea`);
    await db.query(`ALTER TABLE "workers" ADD "revoked_at" TIMESTAMP WITH TIME ZONE`);
    await db.query(`CREATE UNIQUE INDEX "workers_token_hash_uq" ON "workers" ("token_hash") WHERE token_hash IS NOT NULL`);
    await db.query(`CREATE INDEX "workers_prior_token_hash_idx" ON "workers" ("prior_token_hash") WHERE prior_token_hash IS NOT NULL`);
    await db.query(`CREATE INDEX "jobs_created_idx" ON "jobs" ("created_at", "id")`);
  }

  async down(db: QueryRunner): Promise<void> {
    await db.query(`DROP INDEX "jobs_created_idx"`);
    await db.query(`DROP INDEX "workers_prior_token_hash_idx"`);
    await db.query(`DROP INDEX "workers_token_hash_uq"`);
    await db.query(`ALTER TABLE "workers" DROP COLUMN "revoked_at"`);
    await db.query(`ALTER TABLE "workers" DROP COLUMN "prior_token_hash"`);
    await db.query(`ALTER TABLE "workers" DROP COLUMN "token_hash"`);
    await db.query(`ALTER TABLE "workers" DROP COLUMN "epoch"`);
  }
}
