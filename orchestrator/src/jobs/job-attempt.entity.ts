import { Column, Entity, ManyToOne, JoinColumn, PrimaryColumn } from 'typeorm';
import { JobEntity } from './job.entity';

export type AttemptOutcome = 'succeeded' | 'failed' | 'retrying' | 'lease_lost' | 'timed_out' | 'released' | 'cancelled';

/**
 * The history of one ended attempt of a job: who ran it, with which lease, and how it ended. Written
 * once, when the attempt ends; the attempt in progress is on the job row itself.
 */
@Entity({ name: 'job_attempts' })
export class JobAttemptEntity {
  @PrimaryColumn('uuid', { name: 'job_id' }) jobId!: string;
  @PrimaryColumn('int') attempt!: number;
  @ManyToOne(() => JobEntity, { onDelete: 'CASCADE' })
  @JoinColumn({ name: 'job_id', foreignKeyConstraintName: 'job_attempts_job_fk' })
  job?: JobEntity;
  @Column('text', { name: 'worker_id' }) workerId!: string;
  @Column('uuid', { name: 'lease_token' }) leaseToken!: string;
  @Column('timestamptz', { name: 'claimed_at', default: () => 'now()' }) claimedAt!: Date;
  @Column('timestamptz', { name: 'ended_at', nullable: true }) endedAt!: Date | null;
  @Column('text', { nullable: true }) outcome!: AttemptOutcome | null;
  @Column('text', { name: 'error_code', nullable: true }) errorCode!: string | null;
  @Column('text', { name: 'error_message', nullable: true }) errorMessage!: string | null;
  /** The result this attempt submitted, kept to answer a repeated completion idempotently. */
  @Column('jsonb', { nullable: true }) result!: Record<string, unknown> | null;
}
