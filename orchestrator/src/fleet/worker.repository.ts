import type { Pool, PoolClient } from 'pg';
import type { Queryable } from '../leases/lease.repository';
import type { RegisterWorkerRequest, WorkerCommand, WorkerView } from '@avatar-fleet/contracts';

/** The worker registry. Liveness (heartbeats) and leases are in LeaseRepository. */
export class WorkerRepository {
  /** Inserts or refreshes a worker row; a re-registering id starts a new life (state online, no command). */
  async upsert(db: PoolClient, id: string, req: RegisterWorkerRequest): Promise<void> {
    await db.query(
      `INSERT INTO workers (id, provider, mode, state, activity, gpu_class, gpu_name, vram_gb, kinds, version, hourly_cost,
         slots, execution_provider, command, telemetry, registered_at, last_heartbeat_at)
       VALUES ($1, $2, $3, 'online', 'loading', $4, $5, $6, $7, $8, $9, $10, $11, NULL, NULL, now(), now())
       ON CONFLICT (id) DO UPDATE SET provider = EXCLUDED.provider, mode = EXCLUDED.mode, state = 'online',
         activity = 'loading', gpu_class = EXCLUDED.gpu_class, gpu_name = EXCLUDED.gpu_name, vram_gb = EXCLUDED.vram_gb,
         kinds = EXCLUDED.kinds, version = EXCLUDED.version, hourly_cost = EXCLUDED.hourly_cost, slots = EXCLUDED.slots,
         execution_provider = EXCLUDED.execution_provider, command = NULL, telemetry = NULL,
         registered_at = now(), last_heartbeat_at = now()`,
      [
        id, req.provider, req.mode, req.gpuClass ?? null, req.gpuName ?? null, req.vramGb ?? null, [...req.kinds].sort(),
        req.version, req.hourlyCost ?? null, req.slots ?? 1, req.executionProvider ?? null,
      ],
    );
  }

  /**
   * Marks the worker stopped; false when there is no such worker. The row is locked FOR UPDATE
   * first: that waits for claims in flight for this worker (they hold KEY SHARE locks on it) and
   * holds off later ones until the transaction ends, when they see it stopped.
   */
  async stop(db: PoolClient, id: string): Promise<boolean> {
    const { rowCount } = await db.query(
      `WITH locked AS (SELECT id FROM workers WHERE id = $1 FOR UPDATE)
       UPDATE workers w SET state = 'stopped', activity = 'stopped', command = NULL FROM locked WHERE w.id = locked.id`,
      [id],
    );
    return (rowCount ?? 0) > 0;
  }

  async setCommand(db: Queryable, id: string, command: WorkerCommand | null): Promise<boolean> {
    const { rowCount } = await db.query(`UPDATE workers SET command = $2 WHERE id = $1 AND state <> 'stopped'`, [id, command]);
    return (rowCount ?? 0) > 0;
  }

  async list(db: Pool, id?: string): Promise<WorkerView[]> {
    const { rows } = await db.query(
      `SELECT w.*, (SELECT count(*)::int FROM jobs j WHERE j.lease_expires_at IS NOT NULL AND j.state = 'running' AND j.worker_id = w.id) AS running_jobs
       FROM workers w WHERE ($1::text IS NULL OR w.id = $1)
       ORDER BY w.state = 'online' DESC, w.last_heartbeat_at DESC LIMIT 1000`,
      [id ?? null],
    );
    return rows.map((r) => ({
      id: r.id,
      provider: r.provider,
      mode: r.mode,
      state: r.state,
      activity: r.activity,
      gpuClass: r.gpu_class,
      gpuName: r.gpu_name,
      vramGb: r.vram_gb,
      kinds: r.kinds,
      version: r.version,
      hourlyCost: r.hourly_cost,
      slots: r.slots,
      executionProvider: r.execution_provider,
      command: r.command,
      telemetry: r.telemetry,
      registeredAt: r.registered_at.toISOString(),
      lastHeartbeatAt: r.last_heartbeat_at.toISOString(),
      runningJobs: r.running_jobs,
    }));
  }

  async countByState(db: Pool): Promise<{ state: string; count: number }[]> {
    const { rows } = await db.query(`SELECT state, count(*)::int AS count FROM workers GROUP BY state`);
    return rows;
  }
}
