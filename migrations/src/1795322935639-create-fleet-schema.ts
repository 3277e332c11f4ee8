import type { MigrationInterface, QueryRunner } from 'typeorm';

/** Jobs with their lease columns, the attempt history, and the worker registry. */
export class CreateFleetSchema1795322935639 implements MigrationInterface {
  name = 'CreateFleetSchema1795322935639';

  async up(db: QueryRunner): Promise<void> {
    await db.query(`CREATE TABLE "jobs" (
      "id" uuid NOT NULL DEFAULT gen_random_uuid(),
      "owner" text NOT NULL,
      "kind" text NOT NULL,
      "state" text NOT NULL,
      "input" jsonb NOT NULL,
      "priority" integer NOT NULL DEFAULT '0',
      "gpu_class" text,
      "min_vram_gb" real NOT NULL DEFAULT '0',
      "idempotency_key" text,
      "request_hash" text,
      "webhook_url" text,
      "max_attempts" integer NOT NULL,
      "timeout_sec" integer NOT NULL,
      "backoff_base_ms" integer NOT NULL,
      "backoff_max_ms" integer NOT NULL,
      "attempt" integer NOT NULL DEFAULT '0',
      "attempts_used" integer NOT NULL DEFAULT '0',
      "lease_losses" integer NOT NULL DEFAULT '0',
      "lease_token" uuid,
      "lease_expires_at" TIMESTAMP WITH TIME ZONE,
      "worker_id" text,
      "deadline_at" TIMESTAMP WITH TIME ZONE,
      "cancel_requested" boolean NOT NULL DEFAULT false,
      "progress" jsonb,
      "result" jsonb,
      "error_code" text,
      "error_message" text,
      "run_after" TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT now(),
      "created_at" TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT now(),
      "updated_at" TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT now(),
      "started_at" TIMESTAMP WITH TIME ZONE,
      "finished_at" TIMESTAMP WITH TIME ZONE,
      CONSTRAINT "PK_cf0a6c42b72fcc7f7c237def345" PRIMARY KEY ("id"))`);
    // The claim statement walks this index in order and stops at the first unlocked row it may take.
    await db.query(`CREATE INDEX "jobs_claimable_idx" ON "jobs" ("priority" DESC, "created_at", "id") WHERE state = 'queued'`);
    await db.query(`CREATE INDEX "jobs_leased_idx" ON "jobs" ("worker_id", "lease_expires_at") WHERE lease_expires_at IS NOT NULL`);
    await db.query(`CREATE INDEX "jobs_owner_created_idx" ON "jobs" ("owner", "created_at", "id")`);
    await db.query(`CREATE UNIQUE INDEX "jobs_owner_idempotency_key_uq" ON "jobs" ("owner", "idempotency_key") WHERE idempotency_key IS NOT NULL`);
    await db.query(`CREATE TABLE "job_attempts" (
      "job_id" uuid NOT NULL,
      "attempt" integer NOT NULL,
      "worker_id" text NOT NULL,
      "lease_token" uuid NOT NULL,
      "claimed_at" TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT now(),
      "ended_at" TIMESTAMP WITH TIME ZONE,
      "outcome" text,
      "error_code" text,
      "error_message" text,
      "result" jsonb,
      CONSTRAINT "PK_0c36650236fefad798f31a873c7" PRIMARY KEY ("job_id", "attempt"))`);
    await db.query(`ALTER TABLE "job_attempts" ADD CONSTRAINT "job_attempts_job_fk"
      FOREIGN KEY ("job_id") REFERENCES "jobs"("id") ON DELETE CASCADE ON UPDATE NO ACTION`);
    await db.query(`CREATE TABLE "workers" (
      "id" text NOT NULL,
      "provider" text NOT NULL,
      "mode" text NOT NULL,
      "state" text NOT NULL DEFAULT 'online',
      "activity" text NOT NULL DEFAULT 'loading',
      "gpu_class" text,
      "gpu_name" text,
      "vram_gb" real,
      "kinds" text array NOT NULL,
      "version" text NOT NULL,
      "hourly_cost" double precision,
      "slots" integer NOT NULL DEFAULT '1',
      "execution_provider" text,
      "command" text,
      "telemetry" jsonb,
      "registered_at" TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT now(),
      "last_heartbeat_at" TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT now(),
      CONSTRAINT "PK_e950c9aba3bd84a4f193058d838" PRIMARY KEY ("id"))`);
    await db.query(`CREATE INDEX "workers_online_heartbeat_idx" ON "workers" ("last_heartbeat_at") WHERE state = 'online'`);
  }

  async down(db: QueryRunner): Promise<void> {
    await db.query(`DROP TABLE "job_attempts"`);
    await db.query(`DROP TABLE "workers"`);
    await db.query(`DROP TABLE "jobs"`);
  }
}
