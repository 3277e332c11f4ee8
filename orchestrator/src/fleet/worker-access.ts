import { Injectable, Logger } from '@nestjs/common';
import { ErrorCode, parseGpuClassName, type LegacyIdentity, type RegisterWorkerRequest } from '@avatar-fleet/contracts';
import type { Principal } from '../auth/principal';
import { ApiError } from '../common/api-error';
import { OrchestratorConfig } from '../config/orchestrator.config';
import { Database } from '../database/database';
import { LeasesService } from '../leases/leases.service';
import { forbidden, legacyRefused, notRegistered, revokedError, tokenHolder } from './worker-errors';
import { WorkerRepository } from './worker.repository';

/**
 * Who may act for a worker id. A worker token acts for its own worker only. The shared key
 * (INTERNAL_API_KEY) registers workers; while LEGACY_WORKERS=allow it also acts for legacy hosts,
 * the ones without a token of their own (seed 003's MuseTalk worker, which never registers): such a
 * host is registered on its first heartbeat or claim, from what that request says about it. The
 * shared key never acts for a live worker that registered with a token.
 */
@Injectable()
export class WorkerAccess {
  private readonly logger = new Logger('WorkerAccess');

  constructor(
    private readonly config: OrchestratorConfig,
    private readonly db: Database,
    private readonly workers: WorkerRepository,
    private readonly leasing: LeasesService,
  ) {}

  /**
   * Throws unless `caller` may act for `workerId`. With `identity` (a heartbeat or claim), an
   * unknown or stopped legacy host is registered implicitly; without it (deregister), it is not.
   */
  async actFor(caller: Principal, workerId: string, identity?: LegacyIdentity): Promise<void> {
    if (caller.role === 'worker') {
      if (caller.workerId !== workerId) {
        throw forbidden(`this token belongs to worker ${caller.workerId}; it cannot act for worker ${workerId}`);
      }
      return;
    }
    if (caller.role !== 'enrolment') throw forbidden('this route needs a worker token (from register) or the enrolment key (INTERNAL_API_KEY)');
    if (this.config.LEGACY_WORKERS === 'refuse') throw legacyRefused();
    const known = await this.workers.credentialOf(this.db.pool, workerId);
    if (known?.revokedAt) throw revokedError(workerId, known.revokedAt);
    if (known?.hasToken && known.state !== 'stopped') throw tokenHolder(workerId);
    if (known && !known.hasToken && known.state !== 'stopped') return;
    if (!identity) throw notRegistered(workerId);
    await this.registerLegacy(workerId, identity);
  }

  /** Whether `caller` may act for an already registered `workerId` (no implicit registration). */
  async mayActFor(caller: Principal, workerId: string): Promise<boolean> {
    try {
      await this.actFor(caller, workerId);
      return true;
    } catch (error) {
      if (error instanceof ApiError && (error.getStatus() === 403 || error.getStatus() === 409)) return false;
      throw error;
    }
  }

  /**
   * Throws unless `caller` may report on the job (status, progress). The lease token the report
   * carries is the capability (only the claim answer held it); a worker token must also be the
   * holder's, which the write's own SQL checks (see asHolder). The shared key reports only for
   * jobs that legacy hosts hold.
   */
  async reportFor(caller: Principal, jobId: string): Promise<void> {
    if (caller.role === 'worker') return;
    if (this.config.LEGACY_WORKERS === 'refuse') throw legacyRefused();
    const holder = await this.workers.tokenHolderOf(this.db.pool, jobId);
    if (holder) throw forbidden(`job ${jobId} is held by worker ${holder}, which has its own token: report with that token, not INTERNAL_API_KEY`);
  }

  /**
   * Runs a worker's write about a job; when it is refused as stale but the lease is alive and held
   * by another worker than the token's, says that instead (403): the write came with the wrong token.
   */
  async asHolder<T>(caller: Principal, jobId: string, fence: { attempt: number; leaseToken: string }, write: () => Promise<T>): Promise<T> {
    try {
      return await write();
    } catch (error) {
      if (caller.role !== 'worker' || !(error instanceof ApiError) || error.code !== ErrorCode.StaleLease) throw error;
      const holder = await this.workers.holderOfLease(this.db.pool, jobId, fence);
      if (holder && holder !== caller.workerId) {
        throw forbidden(`job ${jobId} is held by worker ${holder}; this token belongs to worker ${caller.workerId}: report with the holder's token`);
      }
      throw error;
    }
  }

  private async registerLegacy(workerId: string, identity: LegacyIdentity): Promise<void> {
    const named = identity.gpuClassName ? parseGpuClassName(identity.gpuClassName) : undefined;
    const fromClass = identity.gpuClass ? parseGpuClassName(identity.gpuClass) : undefined;
    const req: RegisterWorkerRequest = {
      workerId,
      provider: identity.provider ?? 'other',
      mode: 'buffer',
      gpuClass: fromClass?.gpuClass ?? named?.gpuClass,
      vramGb: identity.vramGb ?? fromClass?.vramGb ?? named?.vramGb,
      // Seed 003's worker runs MuseTalk lip-sync and nothing else.
      kinds: identity.kinds ?? ['lipsync'],
      version: identity.version ?? 'legacy',
    };
    const epoch = await this.db.transaction((c) => this.workers.upsert(c, workerId, req, null));
    if (epoch === null) {
      const now = await this.workers.credentialOf(this.db.pool, workerId);
      if (now?.revokedAt) throw revokedError(workerId, now.revokedAt);
      throw tokenHolder(workerId);
    }
    this.leasing.rememberCaps(workerId, { kinds: req.kinds, gpuClass: req.gpuClass ?? null, vramGb: req.vramGb ?? 0 });
    // Worker-supplied text is logged quoted (JSON), so a line break in it cannot forge a log line.
    this.logger.warn(`worker ${workerId} registered implicitly as a legacy host on the shared key (epoch ${epoch}; ` +
      `${req.gpuClass ? JSON.stringify(req.gpuClass) : 'no gpu class'}, ${req.vramGb ?? 0} GB, kinds ${req.kinds.join(',')})`);
  }
}
