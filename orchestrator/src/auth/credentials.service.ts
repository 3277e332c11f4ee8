import { timingSafeEqual } from 'node:crypto';
import { Injectable, type OnModuleInit } from '@nestjs/common';
import { ErrorCode, WORKER_TOKEN_PREFIX } from '@avatar-fleet/contracts';
import { ApiError } from '../common/api-error';
import { OrchestratorConfig } from '../config/orchestrator.config';
import { Database } from '../database/database';
import { Channels } from '../database/notify-listener';
import { sha256, type Principal } from './principal';

/** How long a looked-up worker token is trusted without asking the database again. */
const TOKEN_CACHE_MS = 60_000;
const MAX_CACHED_TOKENS = 50_000;

interface TokenEntry {
  workerId: string;
  epoch: number;
  /** False for the previous registration's token: that process is stale. */
  current: boolean;
  revokedAt: Date | null;
  at: number;
}

/**
 * Turns a presented key into a Principal. Static keys (product, operator, enrolment) are compared
 * in constant time against every configured key, so timing tells neither the key nor which one
 * matched. Worker tokens are looked up by their SHA-256 (they are 256 random bits: a hash is all
 * the protection they need, and lookup by hash leaks nothing usable) and cached, so a heartbeat
 * or claim costs no extra query. A token's cache entry is dropped as soon as its worker registers
 * again or is revoked, on every replica (NOTIFY), and after TOKEN_CACHE_MS regardless.
 */
@Injectable()
export class CredentialsService implements OnModuleInit {
  private readonly staticKeys: { digest: Buffer; principal: Principal }[];
  private readonly tokens = new Map<string, TokenEntry>();
  private readonly tokensByWorker = new Map<string, Set<string>>();

  constructor(
    config: OrchestratorConfig,
    private readonly db: Database,
  ) {
    this.staticKeys = [
      ...[...config.apiKeys()].map(([key, owner]) => ({ digest: sha256(key), principal: { role: 'product', owner } as Principal })),
      ...[...config.operatorKeys()].map(([key, name]) => ({ digest: sha256(key), principal: { role: 'operator', name } as Principal })),
      { digest: sha256(config.INTERNAL_API_KEY), principal: { role: 'enrolment' } },
    ];
  }

  onModuleInit(): void {
    this.db.listener.on(Channels.workerCredentials, (workerId) => this.forget(workerId));
    // Notifications sent while the connection was down are lost: trust no cached token from before.
    this.db.listener.onReconnect(() => {
      this.tokens.clear();
      this.tokensByWorker.clear();
    });
  }

  /** The caller, or null for a key that is nobody's. Throws 409/403 for a stale or revoked worker token. */
  async resolve(key: string): Promise<Principal | null> {
    const digest = sha256(key);
    let found: Principal | null = null;
    for (const k of this.staticKeys) if (timingSafeEqual(k.digest, digest)) found = k.principal;
    if (found || !key.startsWith(WORKER_TOKEN_PREFIX)) return found;
    const entry = await this.lookup(digest);
    if (!entry) return null;
    if (entry.revokedAt) {
      throw new ApiError(403, ErrorCode.WorkerRevoked, `worker ${entry.workerId} was revoked by an operator at ${entry.revokedAt.toISOString()}; stop it`);
    }
    if (!entry.current) {
      throw new ApiError(409, ErrorCode.StaleRegistration,
        `worker ${entry.workerId} was registered again (epoch ${entry.epoch}) after this token was issued; this process is stale and must stop`);
    }
    return { role: 'worker', workerId: entry.workerId, epoch: entry.epoch };
  }

  /**
   * A token this replica just issued (after the registration's NOTIFY was delivered here, which
   * dropped the id's older tokens): cached at once, so the worker's first call costs no lookup.
   */
  issued(workerId: string, epoch: number, token: string): void {
    this.cache(sha256(token).toString('hex'), { workerId, epoch, current: true, revokedAt: null, at: Date.now() });
  }

  /** Drops what this replica cached about the worker's tokens (it registered again, or was revoked). */
  forget(workerId: string): void {
    for (const hex of this.tokensByWorker.get(workerId) ?? []) this.tokens.delete(hex);
    this.tokensByWorker.delete(workerId);
  }

  private evict(hex: string): void {
    const entry = this.tokens.get(hex);
    if (!entry) return;
    this.tokens.delete(hex);
    const set = this.tokensByWorker.get(entry.workerId);
    set?.delete(hex);
    if (set?.size === 0) this.tokensByWorker.delete(entry.workerId);
  }

  private async lookup(digest: Buffer): Promise<TokenEntry | null> {
    const hex = digest.toString('hex');
    const cached = this.tokens.get(hex);
    if (cached && Date.now() - cached.at < TOKEN_CACHE_MS) return cached;
    const { rows } = await this.db.pool.query({
      name: 'worker-token',
      text: `SELECT id, epoch, token_hash = $1 AS current, revoked_at FROM workers
             WHERE token_hash = $1 OR prior_token_hash = $1 ORDER BY token_hash = $1 DESC LIMIT 1`,
      values: [digest],
    });
    const row = rows[0];
    if (!row) return null;
    // A prior token's epoch is the one that replaced it: what the stale process is told.
    const entry: TokenEntry = { workerId: row.id, epoch: row.epoch, current: row.current, revokedAt: row.revoked_at, at: Date.now() };
    this.cache(hex, entry);
    return entry;
  }

  private cache(hex: string, entry: TokenEntry): void {
    if (this.tokens.size >= MAX_CACHED_TOKENS) this.evict(this.tokens.keys().next().value!);
    this.evict(hex);
    this.tokens.set(hex, entry);
    let set = this.tokensByWorker.get(entry.workerId);
    if (!set) this.tokensByWorker.set(entry.workerId, (set = new Set()));
    set.add(hex);
  }
}
