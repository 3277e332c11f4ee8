import { readFileSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import {
  AddressPolicy, ErrorCode, WorkerClient, type HeartbeatResponse, type HeldLease, type StatusRequest, type WorkerActivity,
} from '@avatar-fleet/contracts';
import type { WorkerConfig } from '../config/worker.config';
import { ModelLoader } from '../inference/model-loader';
import { resolveKinds, type PipelineSet } from '../pipelines/pipeline';
import { createStorage } from '../storage/create-storage';
import { syncModels } from '../storage/model-sync';
import type { ObjectStorage } from '../storage/storage';
import { deliverFinalStatus, isTransient, type DeliveryResult } from './delivery';
import { HeartbeatThread } from './heartbeat';
import { RunningJob, runJob, type JobOutcome } from './job-runner';
import { errorMessage, type Logger } from './logger';
import { retry } from './retry';
import { detectGpu } from './telemetry';

export interface Registration {
  workerId: string;
  /** This registration's epoch; sent when registering again, so a stale process is told it is one. */
  epoch?: number;
  heartbeatIntervalSec: number;
  leaseTtlSec: number;
}

/**
 * The worker process's state: start-up in the order operators read it in the log (config, storage,
 * models, registration, ready), the jobs it runs, the heartbeat thread's news about them, and a
 * graceful stop. The two modes (buffer-loop.ts, and queue mode's /generate in http-server.ts) drive jobs through `execute`.
 */
export class FleetWorker {
  readonly client: WorkerClient;
  readonly running = new Map<string, RunningJob>();
  storage!: ObjectStorage;
  registration?: Registration;
  /** Set by a `drain` command: finish what runs, take nothing new. */
  draining = false;
  ready = false;
  private kinds: ReturnType<typeof resolveKinds> = [];
  private executionProvider = 'none';
  private readonly heartbeats: HeartbeatThread;
  private readonly stopping = new AbortController();
  private readonly stateListeners = new Set<() => void>();
  private stopped?: Promise<void>;
  /** This worker's own credential, from its latest registration (absent from an orchestrator that issues none). */
  private token?: string;
  /** Job media URLs may reach public addresses and MEDIA_FETCH_ALLOW only. */
  private readonly mediaAccess: AddressPolicy;

  constructor(
    readonly config: WorkerConfig,
    private readonly pipelines: PipelineSet,
    readonly log: Logger,
  ) {
    this.client = new WorkerClient({ baseUrl: config.orchestratorUrl, apiKey: config.internalApiKey });
    this.mediaAccess = new AddressPolicy(config.mediaFetchAllow);
    this.heartbeats = new HeartbeatThread(log, {
      onReply: (reply, sent) => this.onHeartbeat(reply, sent),
      onFailure: (failure) => {
        // Another process registered this id since, or an operator revoked it: this one must go.
        if (failure.code === ErrorCode.StaleRegistration || failure.code === ErrorCode.WorkerRevoked) {
          this.log.error('this worker may no longer act; stopping', { reason: failure.message });
          void this.stop(failure.code, true);
          return;
        }
        // Registering again releases what the old registration held, so only an idle worker does it.
        if (failure.code === ErrorCode.WorkerNotRegistered && this.running.size === 0 && !this.stopRequested) {
          this.register().catch((error: unknown) => this.log.warn('registering again failed', { reason: errorMessage(error) }));
        }
      },
    });
  }

  /** Aborts when a stop was asked for (SIGTERM, a shutdown command): no new work from then on. */
  get stopSignal(): AbortSignal {
    return this.stopping.signal;
  }

  get stopRequested(): boolean {
    return this.stopping.signal.aborted;
  }

  /** Everything before `ready`: throws with a reason the log can show (never a secret). */
  async start(): Promise<void> {
    this.kinds = resolveKinds(this.pipelines.handlers, this.config.kinds);
    await mkdir(this.config.scratchDir, { recursive: true });
    this.storage = createStorage(this.config.storage);
    await this.storage.check();
    this.log.info('storage reachable', { driver: this.storage.driver });
    if (this.config.modelSync) {
      const sync = this.config.modelSync;
      const report = await syncModels({
        storage: createStorage(sync.storage), prefix: sync.prefix, sources: sync.sources, modelDir: this.config.modelDir,
        log: (line: string) => this.log.info(line, { step: 'model-sync' }), signal: this.stopSignal,
      });
      this.log.info('models synced', { downloaded: report.downloaded.length, unchanged: report.unchanged.length, bytes: report.bytesDownloaded });
    }
    const loader = new ModelLoader({ modelDir: this.config.modelDir, executionProvider: this.config.executionProvider, requireRealModels: this.config.requireRealModels, log: this.log });
    const loaded = await this.pipelines.load(loader, this.log, { videoEncoder: this.config.videoEncoder });
    this.executionProvider = loaded.executionProvider;
    this.log.info('models loaded', { executionProvider: loaded.executionProvider, models: loaded.models.join(',') || 'none' });
    // An orchestrator that is not up yet (or restarting) is waited for, not a reason to exit.
    await retry(() => this.register(), {
      policy: { baseMs: 500, maxMs: 15_000 },
      retryable: isTransient,
      signal: this.stopSignal,
      onRetry: (error, failures, delayMs) => this.log.warn('registration failed; retrying', { failures, delayMs, reason: errorMessage(error) }),
    });
    this.heartbeats.start({
      baseUrl: this.config.orchestratorUrl, apiKey: this.token ?? this.config.internalApiKey, workerId: this.registration!.workerId,
      intervalMs: this.registration!.heartbeatIntervalSec * 1000, logLevel: this.config.logLevel,
      executionProvider: this.executionProvider, state: this.heartbeatState(),
    });
  }

  async register(): Promise<Registration> {
    const gpu = await detectGpu();
    const reply = await this.client.register({
      workerId: this.registration?.workerId ?? this.config.fixedWorkerId,
      provider: this.config.provider,
      mode: this.config.mode,
      gpuClass: this.config.gpuClass ?? gpu?.name,
      gpuName: gpu?.name,
      vramGb: this.config.vramGbOverride ?? gpu?.vramGb,
      kinds: this.kinds,
      version: workerVersion(),
      hourlyCost: this.config.hourlyCost,
      slots: this.config.slots,
      executionProvider: this.executionProvider,
      epoch: this.registration?.epoch,
    });
    this.registration = { workerId: reply.workerId, epoch: reply.epoch, heartbeatIntervalSec: reply.heartbeatIntervalSec, leaseTtlSec: reply.leaseTtlSec };
    // The client sends the new token from now on; the heartbeat thread has its own client.
    this.token = reply.token;
    if (reply.token) this.heartbeats.setToken(reply.token);
    this.log.info('registered', { workerId: reply.workerId, mode: this.config.mode, kinds: this.kinds.join(','), gpuClass: this.config.gpuClass ?? gpu?.name ?? 'none' });
    return this.registration;
  }

  /**
   * Runs a leased job and delivers its final status. Returns how delivery ended, if there was one.
   * `claimNext` is asked when the status is sent, so a worker told to stop meanwhile claims nothing.
   */
  async execute(running: RunningJob, claimNext?: () => StatusRequest['claimNext']): Promise<{ outcome: JobOutcome; delivery?: DeliveryResult }> {
    this.running.set(running.job.id, running);
    this.stateChanged();
    try {
      const outcome = await runJob(running, { handlers: this.pipelines.handlers, storage: this.storage, client: this.client, scratchRoot: this.config.scratchDir, mediaAccess: this.mediaAccess, log: this.log });
      if (outcome.kind === 'abandoned') {
        this.log.warn('job abandoned; its result will not be reported', { job: running.job.id, attempt: running.job.attempt, reason: outcome.reason });
        return { outcome };
      }
      const next = claimNext?.();
      const request: StatusRequest = outcome.kind === 'completed'
        ? { ...running.fence, status: 'completed', result: outcome.result, claimNext: next }
        : { ...running.fence, status: 'failed', error: outcome.error, claimNext: next };
      return { outcome, delivery: await deliverFinalStatus(this.client, running, request, this.log) };
    } finally {
      this.running.delete(running.job.id);
      this.stateChanged();
    }
  }

  /**
   * Stops taking work, lets running jobs finish within the grace period, then releases the rest
   * and deregisters. Every call returns the same stop; `force` (a second SIGTERM) releases at once.
   */
  stop(reason: string, force = false): Promise<void> {
    if (force) this.releaseAll('forced');
    this.stopped ??= this.stopOnce(reason);
    return this.stopped;
  }

  private async stopOnce(reason: string): Promise<void> {
    this.log.info('stopping: no new jobs', { reason, running: this.running.size, graceMs: this.config.shutdownGraceMs });
    this.stopping.abort();
    this.stateChanged();
    const drained = await this.waitForIdle(this.config.shutdownGraceMs);
    if (!drained) this.releaseAll('grace period over');
    await this.waitForIdle(5_000);
    // Heartbeats end first: one sent after the deregister would be refused (not registered) and logged.
    await this.heartbeats.stop();
    await this.deregister(reason);
  }

  /** Resolves true once no job runs, false after `timeoutMs`. */
  waitForIdle(timeoutMs: number): Promise<boolean> {
    if (this.running.size === 0) return Promise.resolve(true);
    return new Promise((resolve) => {
      const timer = setTimeout(() => done(false), timeoutMs);
      const listener = () => {
        if (this.running.size === 0) done(true);
      };
      const done = (idle: boolean) => {
        clearTimeout(timer);
        this.stateListeners.delete(listener);
        resolve(idle);
      };
      this.stateListeners.add(listener);
    });
  }

  /** Calls `listener` whenever jobs start or end, or draining or stopping changes. */
  onStateChange(listener: () => void): () => void {
    this.stateListeners.add(listener);
    return () => this.stateListeners.delete(listener);
  }

  private releaseAll(why: string): void {
    if (this.running.size === 0) return;
    this.log.warn('releasing running jobs', { why, jobs: [...this.running.keys()].join(',') });
    for (const running of this.running.values()) running.abort('shutdown');
  }

  private async deregister(reason: string): Promise<void> {
    if (!this.registration) return;
    try {
      const reply = await this.client.deregister(this.registration.workerId, { reason, epoch: this.registration.epoch });
      this.log.info('deregistered', { released: reply.released.length });
    } catch (error) {
      // Not fatal: the leases expire and the reaper requeues the jobs.
      this.log.warn('deregister failed; held jobs requeue when their leases expire', { reason: errorMessage(error) });
    }
  }

  private onHeartbeat(reply: HeartbeatResponse, sent: HeldLease[]): void {
    for (const jobId of reply.lost) {
      const running = this.running.get(jobId);
      // Only if the lost lease is the attempt running now (not one that just finished).
      if (running && sent.some((l) => l.jobId === jobId && l.attempt === running.job.attempt)) {
        this.log.warn('lease lost; stopping the job', { job: jobId, attempt: running.job.attempt });
        running.abort('lease_lost');
      }
    }
    for (const jobId of reply.cancelled) {
      const running = this.running.get(jobId);
      if (running) {
        this.log.info('cancel requested; stopping the job', { job: jobId });
        running.abort('cancelled');
      }
    }
    const drain = reply.commands.includes('drain');
    if (drain !== this.draining) {
      this.draining = drain;
      this.log.info(drain ? 'drain command: finishing current work, taking no new jobs' : 'drain lifted: taking jobs again');
      this.stateChanged();
    }
    if (reply.commands.includes('shutdown') && !this.stopRequested) void this.stop('shutdown command');
  }

  private heartbeatState(): { activity: WorkerActivity; leases: HeldLease[] } {
    const leases = [...this.running.values()].map((r) => ({ jobId: r.job.id, ...r.fence }));
    const activity: WorkerActivity = this.stopRequested || this.draining ? 'draining' : leases.length ? 'busy' : 'idle';
    return { activity, leases };
  }

  private stateChanged(): void {
    this.heartbeats.setState(this.heartbeatState());
    for (const listener of [...this.stateListeners]) listener();
  }
}

function workerVersion(): string {
  try {
    return (JSON.parse(readFileSync(path.resolve(__dirname, '../../../package.json'), 'utf8')) as { version: string }).version;
  } catch {
    return 'unknown';
  }
}
