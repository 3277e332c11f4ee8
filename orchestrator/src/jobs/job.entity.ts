import { Column, Entity, Index, PrimaryGeneratedColumn } from 'typeorm';
import type { JobKind, JobState } from '@avatar-fleet/contracts';

/**
 * One job and its current attempt. The columns lease_token + attempt are the fencing token:
 * every worker write names both and is applied only while they are still current.
 * Queue semantics (claim, renew, complete, requeue) live in SQL in leases/lease.repository.ts.
 */
@Entity({ name: 'jobs' })
@Index('jobs_owner_idempotency_key_uq', ['owner', 'idempotencyKey'], { unique: true, where: 'idempotency_key IS NOT NULL' })
@Index('jobs_owner_created_idx', ['owner', 'createdAt', 'id'])
// Operators list every owner's jobs, newest first.
@Index('jobs_created_idx', ['createdAt', 'id'])
// Leased (running) jobs number at most the fleet's slots; lease_expires_at is set exactly while a job
// is running. One small partial index serves per-worker lookups and the reaper's scans. Its
// predicate is on lease_expires_at, not state, so a statement that only says state = 'running'
// (a completion, looked up by primary key) is never planned as a scan of every running job.
@Index('jobs_leased_idx', ['workerId', 'leaseExpiresAt'], { where: 'lease_expires_at IS NOT NULL' })
// The claim indexes use an expression, DESC and INCLUDE, which TypeORM's @Index cannot express: the
// migration owns them (1796300000000-queue-indexes-for-large-tables.ts says why they are shaped so).
@Index('jobs_claim_idx', { synchronize: false })
@Index('jobs_matured_idx', { synchronize: false })
// finished_at is set exactly while a job is finished: the retention pass reads the oldest from here.
@Index('jobs_finished_idx', ['finishedAt'], { where: 'finished_at IS NOT NULL' })
export class JobEntity {
  @PrimaryGeneratedColumn('uuid') id!: string;
  /** Name of the API key that created the job; a key sees only its own jobs. */
  @Column('text') owner!: string;
  @Column('text') kind!: JobKind;
  @Column('text') state!: JobState;
  @Column('jsonb') input!: Record<string, unknown>;
  @Column('int', { default: 0 }) priority!: number;
  @Column('text', { name: 'gpu_class', nullable: true }) gpuClass!: string | null;
  @Column('real', { name: 'min_vram_gb', default: 0 }) minVramGb!: number;
  @Column('text', { name: 'idempotency_key', nullable: true }) idempotencyKey!: string | null;
  /** Hash of the create request, to tell a retried create from a different one reusing a key. */
  @Column('text', { name: 'request_hash', nullable: true }) requestHash!: string | null;
  @Column('text', { name: 'webhook_url', nullable: true }) webhookUrl!: string | null;
  @Column('int', { name: 'max_attempts' }) maxAttempts!: number;
  @Column('int', { name: 'timeout_sec' }) timeoutSec!: number;
  @Column('int', { name: 'backoff_base_ms' }) backoffBaseMs!: number;
  @Column('int', { name: 'backoff_max_ms' }) backoffMaxMs!: number;
  /** Claims so far; bumped by every claim, so it also numbers attempts for fencing. */
  @Column('int', { default: 0 }) attempt!: number;
  /** Failed and timed-out attempts charged against max_attempts; lost leases and graceful releases are not. */
  @Column('int', { name: 'attempts_used', default: 0 }) attemptsUsed!: number;
  @Column('int', { name: 'lease_losses', default: 0 }) leaseLosses!: number;
  /** Times workers that stopped gracefully handed the job back (MAX_RELEASES). */
  @Column('int', { default: 0 }) releases!: number;
  @Column('uuid', { name: 'lease_token', nullable: true }) leaseToken!: string | null;
  @Column('timestamptz', { name: 'lease_expires_at', nullable: true }) leaseExpiresAt!: Date | null;
  /**
   * The lease token of the attempt whose completion claimed this one in the same call (claimNext);
   * null for any other claim. A retried call finds the job its first try leased by it, and no other.
   */
  @Column('uuid', { name: 'prior_lease_token', nullable: true }) priorLeaseToken!: string | null;
  @Column('text', { name: 'worker_id', nullable: true }) workerId!: string | null;
  @Column('timestamptz', { name: 'deadline_at', nullable: true }) deadlineAt!: Date | null;
  @Column('boolean', { name: 'cancel_requested', default: false }) cancelRequested!: boolean;
  @Column('jsonb', { nullable: true }) progress!: Record<string, unknown> | null;
  @Column('jsonb', { nullable: true }) result!: Record<string, unknown> | null;
  @Column('text', { name: 'error_code', nullable: true }) errorCode!: string | null;
  @Column('text', { name: 'error_message', nullable: true }) errorMessage!: string | null;
  @Column('timestamptz', { name: 'run_after', default: () => 'now()' }) runAfter!: Date;
  @Column('timestamptz', { name: 'created_at', default: () => 'now()' }) createdAt!: Date;
  @Column('timestamptz', { name: 'updated_at', default: () => 'now()' }) updatedAt!: Date;
  @Column('timestamptz', { name: 'started_at', nullable: true }) startedAt!: Date | null;
  @Column('timestamptz', { name: 'finished_at', nullable: true }) finishedAt!: Date | null;
}
