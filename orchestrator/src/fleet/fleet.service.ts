import { randomBytes } from 'node:crypto';
import { Injectable, Logger } from '@nestjs/common';
import {
  ErrorCode, MAX_CLAIM_WAIT_MS, WORKER_TOKEN_PREFIX, type DeregisterResponse, type HeartbeatRequest, type HeartbeatResponse,
  type RegisterWorkerRequest, type RegisterWorkerResponse, type WorkerCommand, type WorkerView,
} from '@avatar-fleet/contracts';
import { CredentialsService } from '../auth/credentials.service';
import { sha256 } from '../auth/principal';
import { ApiError } from '../common/api-error';
import { OrchestratorConfig } from '../config/orchestrator.config';
import { Coalescer } from '../database/coalescer';
import { Database } from '../database/database';
import { Channels } from '../database/notify-listener';
import { LeaseRepository, type Heartbeat, type HeartbeatOutcome } from '../leases/lease.repository';
import { LeasesService } from '../leases/leases.service';
import { MetricsService } from '../observability/metrics.service';
import { notRegistered, revokedError } from './worker-errors';
import { WorkerRepository } from './worker.repository';

/** A claim whose worker was revoked goes back uncharged: the job did nothing wrong. */
const NO_CHARGE = { kind: 'none', cap: 0 } as const;

/** The worker registry: registration, heartbeats, graceful stops and operator commands. */
@Injectable()
export class FleetService {
  private readonly logger = new Logger(FleetService.name);
  /**
   * Heartbeats arriving together are written together: a fleet of 10,000 beats 1,000 times a
   * second, and one statement per beat would make each beat pay a round trip and a commit.
   */
  private registrations = 0;
  private readonly beats = new Coalescer<Heartbeat, HeartbeatOutcome | null>((batch) => this.writeBeats(batch), { maxBatch: 256, maxInFlight: 2 });

  constructor(
    private readonly config: OrchestratorConfig,
    private readonly db: Database,
    private readonly workers: WorkerRepository,
    private readonly leases: LeaseRepository,
    private readonly metrics: MetricsService,
    private readonly leasing: LeasesService,
    private readonly credentials: CredentialsService,
  ) {}

  /**
   * Registers the worker and issues its token (kept only as a hash). A fixed id that registers
   * again is a restarted worker: its previous life's jobs are released at once (that process is
   * gone), its old token stops working, and the epoch moves on. A process that says which epoch it
   * had (`req.epoch`) is refused if another process registered the id since: it is the stale one.
   */
  async register(req: RegisterWorkerRequest): Promise<RegisterWorkerResponse> {
    const workerId = req.workerId ?? `${req.provider}-${randomBytes(6).toString('hex')}`;
    const token = WORKER_TOKEN_PREFIX + randomBytes(32).toString('base64url');
    const { released, epoch, wasLive } = await this.db.transaction(async (c) => {
      const prior = await this.workers.credentialOf(c, workerId, true);
      if (prior?.revokedAt) throw revokedError(workerId, prior.revokedAt);
      if (prior && req.epoch !== undefined && prior.epoch !== req.epoch) throw staleRegistration(workerId, req.epoch, prior.epoch);
      // The process that held them is gone without deregistering: a crash, charged as a lease loss.
      const ids = await this.leases.release(c, workerId, { kind: 'restart', cap: this.config.MAX_LEASE_LOSSES });
      const next = await this.workers.upsert(c, workerId, req, sha256(token));
      if (next === null) throw new Error(`worker ${workerId}: registration refused after its row was checked`);
      return { released: ids, epoch: next, wasLive: prior?.state === 'online' };
    });
    // This replica forgets the old token now (the others when the NOTIFY reaches them) and knows the new one.
    this.db.listener.emitLocal(Channels.workerCredentials, workerId);
    this.credentials.issued(workerId, epoch, token);
    this.leasing.rememberCaps(workerId, { kinds: req.kinds, gpuClass: req.gpuClass ?? null, vramGb: req.vramGb ?? 0 });
    this.noteRegistration();
    // Worker-supplied text is logged quoted (JSON), so a line break in it cannot forge a log line.
    this.logger.log(`worker ${workerId} registered (epoch ${epoch}; ${req.provider}/${req.mode}, ${req.gpuClass ? JSON.stringify(req.gpuClass) : 'no gpu class'}, kinds ${req.kinds.join(',')})`);
    if (wasLive && req.epoch === undefined) this.logger.warn(`worker ${workerId} registered afresh while epoch ${epoch - 1} was online; that process is now stale`);
    if (released.length) this.logger.warn(`worker ${workerId} re-registered; released ${released.length} job(s) of its previous run`);
    return {
      workerId,
      token,
      epoch,
      heartbeatIntervalSec: this.config.HEARTBEAT_INTERVAL_SEC,
      leaseTtlSec: this.config.LEASE_TTL_SEC,
      maxClaimWaitMs: MAX_CLAIM_WAIT_MS,
    };
  }

  /**
   * A fleet that grows from a handful of workers to thousands within a minute outruns autovacuum's
   * ANALYZE (once a minute at best): until it runs, the cached plans of the claim statements,
   * made when the table was tiny, read the whole workers table on every claim (10 ms and more at
   * 10,000 workers). So each time this process's registrations reach a power of two from 16 on,
   * it refreshes the table's statistics itself, which also makes PostgreSQL re-plan them.
   */
  private noteRegistration(): void {
    const n = ++this.registrations;
    if (n < 16 || (n & (n - 1)) !== 0) return;
    this.db.pool.query('ANALYZE workers').catch((error: Error) => this.logger.warn(`ANALYZE workers failed: ${error.message}`));
  }

  /**
   * Renews the leases the beat lists, or, when it lists none at all (a legacy host, which does not
   * know it should), every lease the worker holds: such a host would otherwise lose each job that
   * runs longer than the lease.
   */
  async heartbeat(workerId: string, body: HeartbeatRequest): Promise<HeartbeatResponse> {
    const leases = body.leases ?? (await this.workers.leasesHeldBy(this.db.pool, workerId));
    const req = { ...body, leases, activity: body.activity ?? (leases.length ? 'busy' : 'idle') } as const;
    const outcome = await this.beats.submit({
      workerId, activity: req.activity, leases, telemetry: req.telemetry, executionProvider: req.executionProvider,
    });
    if (!outcome) throw notRegistered(workerId);
    this.metrics.heartbeatLag.observe(outcome.lagSec);
    if (outcome.wasOffline) this.logger.warn(`worker ${workerId} is back online`);
    const renewed = new Set(outcome.renewed.map((r) => r.id));
    const lost = req.leases.filter((l) => !renewed.has(l.jobId)).map((l) => l.jobId);
    const expiries = outcome.renewed.map((r) => r.leaseExpiresAt.getTime());
    const commands: WorkerCommand[] = outcome.command ? [outcome.command] : [];
    return {
      renewed: [...renewed],
      lost,
      cancelled: outcome.renewed.filter((r) => r.cancelRequested).map((r) => r.id),
      commands,
      // Leases run on the database's clock; this process's clock may differ from it.
      leaseExpiresAt: (expiries.length ? new Date(Math.min(...expiries)) : outcome.freshLeaseExpiresAt).toISOString(),
    };
  }

  private async writeBeats(batch: Heartbeat[]): Promise<(HeartbeatOutcome | null)[]> {
    try {
      return await this.leases.heartbeatBatch(this.db.heartbeats, batch, this.config.LEASE_TTL_SEC);
    } catch (error) {
      // Rows of one batch are locked in no set order, so two batches (two replicas, or the
      // reaper) can deadlock; PostgreSQL then aborts one, which is safe to run again once.
      if ((error as { code?: string }).code !== DEADLOCK_DETECTED) throw error;
      return this.leases.heartbeatBatch(this.db.heartbeats, batch, this.config.LEASE_TTL_SEC);
    }
  }

  /**
   * Stops the worker, then releases what it holds: stopped first, so that no claim can lease it a
   * job after the release has looked (see WorkerRepository.stop).
   */
  async deregister(workerId: string, epoch: number | null, reason?: string): Promise<DeregisterResponse> {
    const released = await this.db.transaction(async (c) => {
      if (!(await this.workers.stop(c, workerId, epoch))) return null;
      return this.leases.release(c, workerId, { kind: 'stop', cap: this.config.MAX_RELEASES });
    });
    if (!released) {
      const now = await this.workers.credentialOf(this.db.pool, workerId);
      if (now && epoch !== null && now.epoch !== epoch) throw staleRegistration(workerId, epoch, now.epoch);
      throw notRegistered(workerId);
    }
    this.logger.log(`worker ${workerId} deregistered${reason ? ` (${JSON.stringify(reason)})` : ''}; released ${released.length} job(s)`);
    return { released };
  }

  list(): Promise<WorkerView[]> {
    return this.workers.list(this.db.pool);
  }

  /**
   * Revokes the worker: stopped at once, its token refused everywhere, its id barred from
   * registering until reinstated; its jobs go back to the queue uncharged.
   */
  async revoke(workerId: string): Promise<WorkerView> {
    const released = await this.db.transaction(async (c) => {
      if (!(await this.workers.setRevoked(c, workerId, true))) return null;
      return this.leases.release(c, workerId, NO_CHARGE);
    });
    if (!released) throw ApiError.notFound(`worker ${workerId}`);
    this.db.listener.emitLocal(Channels.workerCredentials, workerId);
    this.logger.warn(`worker ${workerId} revoked by an operator; released ${released.length} job(s)`);
    return (await this.workers.list(this.db.pool, workerId))[0]!;
  }

  /** Lifts a revocation; the worker comes back by registering anew (its old tokens stay void). */
  async reinstate(workerId: string): Promise<WorkerView> {
    const ok = await this.db.transaction((c) => this.workers.setRevoked(c, workerId, false));
    if (!ok) throw ApiError.notFound(`worker ${workerId}`);
    this.db.listener.emitLocal(Channels.workerCredentials, workerId);
    this.logger.log(`worker ${workerId} reinstated by an operator`);
    return (await this.workers.list(this.db.pool, workerId))[0]!;
  }

  async command(workerId: string, command: WorkerCommand | 'none'): Promise<WorkerView> {
    const ok = await this.workers.setCommand(this.db.pool, workerId, command === 'none' ? null : command);
    if (!ok) throw ApiError.notFound(`worker ${workerId}`);
    return (await this.workers.list(this.db.pool, workerId))[0]!;
  }
}

const DEADLOCK_DETECTED = '40P01';

function staleRegistration(workerId: string, had: number, now: number): ApiError {
  return new ApiError(409, ErrorCode.StaleRegistration,
    `worker ${workerId} was registered again by another process (epoch ${now}; this process had epoch ${had}); this process is stale and must stop`);
}
