import { Column, Entity, Index, PrimaryColumn } from 'typeorm';
import type { JobKind, WorkerCommand } from '@avatar-fleet/contracts';

export type WorkerState = 'online' | 'offline' | 'stopped';

/** A registered GPU worker. `state` is the orchestrator's view; `activity` is what the worker reports. */
@Entity({ name: 'workers' })
@Index('workers_token_hash_uq', ['tokenHash'], { unique: true, where: 'token_hash IS NOT NULL' })
@Index('workers_prior_token_hash_idx', ['priorTokenHash'], { where: 'prior_token_hash IS NOT NULL' })
export class WorkerEntity {
  @PrimaryColumn('text') id!: string;
  @Column('text') provider!: string;
  @Column('text') mode!: string;
  @Column('text', { default: 'online' }) state!: WorkerState;
  @Column('text', { default: 'loading' }) activity!: string;
  @Column('text', { name: 'gpu_class', nullable: true }) gpuClass!: string | null;
  @Column('text', { name: 'gpu_name', nullable: true }) gpuName!: string | null;
  @Column('real', { name: 'vram_gb', nullable: true }) vramGb!: number | null;
  /** Sorted, so that two workers with the same capabilities compare equal. */
  @Column('text', { array: true }) kinds!: JobKind[];
  @Column('text') version!: string;
  @Column('double precision', { name: 'hourly_cost', nullable: true }) hourlyCost!: number | null;
  @Column('int', { default: 1 }) slots!: number;
  @Column('text', { name: 'execution_provider', nullable: true }) executionProvider!: string | null;
  /** A pending operator command, delivered in every heartbeat reply until cleared or obeyed. */
  @Column('text', { nullable: true }) command!: WorkerCommand | null;
  @Column('jsonb', { nullable: true }) telemetry!: Record<string, number> | null;
  @Column('timestamptz', { name: 'registered_at', default: () => 'now()' }) registeredAt!: Date;
  @Column('timestamptz', { name: 'last_heartbeat_at', default: () => 'now()' }) lastHeartbeatAt!: Date;
  /** Registrations of this id so far; the newest process's epoch fences older ones out. */
  @Column('int', { default: 0 }) epoch!: number;
  /** SHA-256 of the worker's token; NULL for a legacy host that uses the shared key. */
  @Column('bytea', { name: 'token_hash', nullable: true }) tokenHash!: Buffer | null;
  /** The previous registration's token hash, to tell a stale process from an unknown key. */
  @Column('bytea', { name: 'prior_token_hash', nullable: true }) priorTokenHash!: Buffer | null;
  @Column('timestamptz', { name: 'revoked_at', nullable: true }) revokedAt!: Date | null;
}
