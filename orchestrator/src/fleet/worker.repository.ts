import type { Pool, PoolClient } from 'pg';
import type { HeldLease, RegisterWorkerRequest, WorkerCommand, WorkerView } from '@avatar-fleet/contracts';
import { Channels } from '../database/notify-listener';
import type { Queryable } from '../leases/lease.repository';

export interface WorkerCredential {
  state: 'online' | 'offline' | 'stopped';
  epoch: number;
  /** False for a legacy host, which authenticates with the shared key. */
  hasToken: boolean;
  revokedAt: Date | null;
}

/** The worker registry. Liveness (heartbeats) and leases are in LeaseRepository. */
export class WorkerRepository {
  /**
   * Inserts or refreshes a worker row: a re-registering id starts a new life (state online, no
   * command), one epoch later, with `tokenHash` as its credential (null: a legacy host on the shared
   * key) and the previous life's token kept as prior, so its process is told it is stale. The
   * NOTIFY drops every replica's cached tokens of the id. Returns the new epoch, or null when the
   * row may not be taken over (revoked, or a live registration with a token and `tokenHash` null).
   */
  async upsert(db: PoolClient, id: string, req: RegisterWorkerRequest, tokenHash: Buffer | null): Promise<number | null> {
    const { rows } = await db.query(
      `WITH up AS (
         INSERT INTO workers (id, provider, mode, state, activity, gpu_class, gpu_name, vram_gb, kinds, version, hourly_cost,
           slots, execution_provider, command, telemetry, registered_at, last_heartbeat_at, epoch, token_hash)
         VALUES ($1, $2, $3, 'online', 'loading', $4, $5, $6, $7, $8, $9, $10, $11, NULL, NULL, now(), now(), 1, $12)
         ON CONFLICT (id) DO UPDATE SET provider = EXCLUDED.provider, mode = EXCLUDED.mode, state = 'online',
           activity = 'loading', gpu_class = EXCLUDED.gpu_class, gpu_name = EXCLUDED.gpu_name, vram_gb = EXCLUDED.vram_gb,
           kinds = EXCLUDED.kinds, version = EXCLUDED.version, hourly_cost = EXCLUDED.hourly_cost, slots = EXCLUDED.slots,
           execution_provider = EXCLUDED.execution_provider, command = NULL, telemetry = NULL,
           registered_at = now(), last_heartbeat_at = now(),
           epoch = workers.epoch + 1, prior_token_hash = workers.token_hash, token_hash = EXCLUDED.token_hash
         -- A revoked id registers no more; and the shared key (no token) never takes over a live
         -- registration that has a token of its own. No row back: refused (the caller says why).
         WHERE workers.revoked_at IS NULL AND ($12::bytea IS NOT NULL OR workers.token_hash IS NULL OR workers.state = 'stopped')
         RETURNING epoch
       )
       SELECT epoch, pg_notify('${Channels.workerCredentials}', $1) FROM up`,
      [
        id, req.provider, req.mode, req.gpuClass ?? null, req.gpuName ?? null, req.vramGb ?? null, [...req.kinds].sort(),
        req.version, req.hourlyCost ?? null, req.slots ?? 1, req.executionProvider ?? null, tokenHash,
      ],
    );
    return rows[0]?.epoch ?? null;
  }

  /** The live worker holding the job, if it has a token of its own (null: a legacy host, or nobody). */
  async tokenHolderOf(db: Queryable, jobId: string): Promise<string | null> {
    const { rows } = await db.query({
      name: 'job-token-holder',
      text: `SELECT w.id FROM jobs j JOIN workers w ON w.id = j.worker_id
             WHERE j.id = $1 AND w.token_hash IS NOT NULL AND w.state <> 'stopped'`,
      values: [jobId],
    });
    return rows[0]?.id ?? null;
  }

  /** The worker holding this live lease, or null when the lease is not live. */
  async holderOfLease(db: Queryable, jobId: string, fence: { attempt: number; leaseToken: string }): Promise<string | null> {
    const { rows } = await db.query(
      `SELECT worker_id FROM jobs WHERE id = $1 AND attempt = $2 AND lease_token = $3 AND state = 'running'`,
      [jobId, fence.attempt, fence.leaseToken],
    );
    return rows[0]?.worker_id ?? null;
  }

  /** The leases the worker holds now, as it would list them: what a heartbeat that lists none renews. */
  async leasesHeldBy(db: Queryable, id: string): Promise<HeldLease[]> {
    const { rows } = await db.query({
      name: 'leases-held-by',
      text: `SELECT id, attempt, lease_token FROM jobs WHERE worker_id = $1 AND lease_expires_at IS NOT NULL AND state = 'running'`,
      values: [id],
    });
    return rows.map((r) => ({ jobId: r.id, attempt: r.attempt, leaseToken: r.lease_token }));
  }

  /** What decides who may act for the worker; `lock` holds the row until the transaction ends. */
  async credentialOf(db: Queryable, id: string, lock = false): Promise<WorkerCredential | null> {
    const { rows } = await db.query(
      `SELECT state, epoch, token_hash IS NOT NULL AS has_token, revoked_at FROM workers WHERE id = $1${lock ? ' FOR UPDATE' : ''}`,
      [id],
    );
    const r = rows[0];
    return r ? { state: r.state, epoch: r.epoch, hasToken: r.has_token, revokedAt: r.revoked_at } : null;
  }

  /**
   * Revokes (or, with `revoked` false, reinstates) the worker: a revoked worker is stopped, its token
   * fails on every replica at once, and its id cannot register until reinstated. Reinstating forgets
   * its tokens too: the id comes back by registering anew. False: no such worker.
   */
  async setRevoked(db: PoolClient, id: string, revoked: boolean): Promise<boolean> {
    const { rowCount } = await db.query(
      revoked
        ? `WITH locked AS (SELECT id FROM workers WHERE id = $1 FOR UPDATE)
           UPDATE workers w SET revoked_at = coalesce(w.revoked_at, now()), state = 'stopped', activity = 'stopped', command = NULL
           FROM locked WHERE w.id = locked.id RETURNING pg_notify('${Channels.workerCredentials}', w.id)`
        : `UPDATE workers SET revoked_at = NULL, token_hash = NULL, prior_token_hash = NULL
           WHERE id = $1 RETURNING pg_notify('${Channels.workerCredentials}', id)`,
      [id],
    );
    return (rowCount ?? 0) > 0;
  }

  /**
   * Marks the worker stopped; false when there is no such worker. The row is locked FOR UPDATE
   * first: that waits for claims in flight for this worker (they hold KEY SHARE locks on it) and
   * holds off later ones until the transaction ends, when they see it stopped. With `epoch`, only
   * that registration is stopped: a newer one of the same id is another process's.
   */
  async stop(db: PoolClient, id: string, epoch: number | null): Promise<boolean> {
    const { rowCount } = await db.query(
      `WITH locked AS (SELECT id FROM workers WHERE id = $1 AND ($2::int IS NULL OR epoch = $2) FOR UPDATE)
       UPDATE workers w SET state = 'stopped', activity = 'stopped', command = NULL FROM locked WHERE w.id = locked.id`,
      [id, epoch],
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
      epoch: r.epoch,
      credential: r.token_hash ? 'token' : 'shared-key',
      revokedAt: r.revoked_at?.toISOString() ?? null,
    }));
  }

  async countByState(db: Pool): Promise<{ state: string; count: number }[]> {
    const { rows } = await db.query(`SELECT state, count(*)::int AS count FROM workers GROUP BY state`);
    return rows;
  }
}
