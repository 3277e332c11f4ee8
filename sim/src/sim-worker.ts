import {
  ErrorCode, FleetApiError, MAX_CLAIM_WAIT_MS, type ClaimedJob, type HeartbeatResponse, type StatusRequest, type WorkerClient,
} from '@avatar-fleet/contracts';
import { workerRegistration } from '@avatar-fleet/orchestrator/dist/test/helpers/fixtures';
import { deliverFinalStatus, isTransient } from '@avatar-fleet/worker/dist/src/runtime/delivery';
import { RunningJob } from '@avatar-fleet/worker/dist/src/runtime/job-runner';
import type { Logger } from '@avatar-fleet/worker/dist/src/runtime/logger';
import { backoffDelay, retry, sleep } from '@avatar-fleet/worker/dist/src/runtime/retry';
import type { Fence, SimEvent } from './events';

/** How simulated jobs behave: how long they take and how often, and how, they fail. */
export interface JobBehaviour {
  /** Each attempt runs for a uniform random time in [minMs, maxMs]. */
  minMs: number;
  maxMs: number;
  /** Share of attempts that fail. */
  failRate: number;
  /** Share of those failures the worker marks retryable. */
  retryableShare: number;
  /** Progress reports per attempt, evenly spaced. */
  progressReports: number;
}

export interface SimWorkerOptions {
  workerId: string;
  client: WorkerClient;
  gpuClass: string;
  jobs: JobBehaviour;
  emit(event: SimEvent): void;
}

const CLAIM_WAIT_MS = Math.min(20_000, MAX_CLAIM_WAIT_MS);
/** The real worker's backoff while the orchestrator is away (worker/src/runtime/buffer-loop.ts). */
const OUTAGE_POLICY = { baseMs: 500, maxMs: 5_000 };
const quiet: Logger = { debug() {}, info() {}, warn() {}, error() {}, child: () => quiet };

/**
 * One simulated GPU worker speaking the worker protocol through WorkerClient, as the buffer-mode
 * worker does: register, heartbeat at the interval the orchestrator gives, long-poll claims, progress,
 * a final status that claims the next job, deregister on drain or stop. Final statuses go through
 * the worker's own delivery (retried through outages, given up when the lease is known lost). Its
 * jobs only wait; `freeze()` makes it stop beating and reporting mid-job, then come back and try
 * to deliver anyway, which the fencing must refuse once the job has moved on.
 */
export class SimWorker {
  private running: RunningJob | null = null;
  private frozenUntil = 0;
  private draining = false;
  private stopped = false;
  private readonly hangUp = new AbortController();
  private heartbeatTimer?: NodeJS.Timeout;
  private intervalMs = 10_000;

  constructor(private readonly o: SimWorkerOptions) {}

  get busy(): boolean {
    return this.running !== null && this.frozenUntil === 0;
  }

  /** Runs until drained (deregistered on the orchestrator's command) or stopped. */
  async run(): Promise<'drained' | 'stopped'> {
    try {
      await retry(() => this.register(), { policy: OUTAGE_POLICY, retryable: isTransient, signal: this.hangUp.signal });
    } catch {
      return 'stopped'; // stopped before it could register
    }
    this.beat();
    let next: ClaimedJob | null = null;
    let failures = 0;
    while (!this.stopped && !(this.draining && !next)) {
      let job = next;
      next = null;
      if (!job) {
        try {
          job = (await this.o.client.claim(this.o.workerId, CLAIM_WAIT_MS, this.hangUp.signal))?.job ?? null;
          failures = 0;
        } catch {
          if (this.stopped) break;
          await sleep(backoffDelay(OUTAGE_POLICY, ++failures), this.hangUp.signal);
          continue;
        }
      }
      if (job) next = await this.execute(job);
    }
    clearTimeout(this.heartbeatTimer);
    // A job handed over by the last claimNext is given back by deregistering, not left to expire.
    await this.o.client.deregister(this.o.workerId, { reason: this.draining ? 'drained' : 'simulation over' }).catch(() => undefined);
    if (this.draining) this.o.emit({ type: 'drained', at: Date.now(), workerId: this.o.workerId });
    return this.draining ? 'drained' : 'stopped';
  }

  /** Stops beating and reporting for `ms` if a job is running; false when idle. */
  freeze(ms: number): boolean {
    if (!this.busy) return false;
    this.frozenUntil = Date.now() + ms;
    this.o.emit({ type: 'froze', at: Date.now(), workerId: this.o.workerId, fence: this.fence(this.running!), until: this.frozenUntil });
    return true;
  }

  stop(): void {
    this.stopped = true;
    this.hangUp.abort();
  }

  private async register(): Promise<void> {
    const reply = await this.o.client.register(
      workerRegistration({ workerId: this.o.workerId, provider: 'other', gpuClass: this.o.gpuClass, kinds: ['lipsync'], version: 'sim' }),
    );
    this.intervalMs = reply.heartbeatIntervalSec * 1000;
    this.o.emit({ type: 'registered', at: Date.now(), workerId: this.o.workerId });
  }

  /** Heartbeats on a fixed cadence, as the worker's heartbeat thread sends them; none while frozen. */
  private beat(): void {
    const started = Date.now();
    const done = () => {
      if (!this.stopped) this.heartbeatTimer = setTimeout(() => this.beat(), Math.max(0, this.intervalMs - (Date.now() - started)));
    };
    if (this.frozenUntil > started) return done();
    const sent = this.running;
    const leases = sent ? [this.fence(sent)] : [];
    const activity = this.draining ? 'draining' : sent ? 'busy' : 'idle';
    this.o.client.heartbeat(this.o.workerId, { activity, leases }).then(
      (reply) => this.onHeartbeat(reply, sent),
      (error: unknown) => {
        // Registering again releases what the old registration held, so only an idle worker does it.
        if (error instanceof FleetApiError && error.code === ErrorCode.WorkerNotRegistered && !this.running && !this.stopped) {
          this.register().catch(() => undefined);
        }
      },
    ).finally(done);
  }

  private onHeartbeat(reply: HeartbeatResponse, sent: RunningJob | null): void {
    if (sent && sent === this.running && reply.lost.includes(sent.job.id)) this.lose(sent);
    if (reply.commands.includes('drain') && !this.draining) {
      this.draining = true;
      if (!this.running) this.hangUp.abort();
    }
  }

  /** Runs one attempt and reports it; returns the next job when the final status claimed one. */
  private async execute(job: ClaimedJob): Promise<ClaimedJob | null> {
    const running = new RunningJob(job);
    this.running = running;
    this.o.emit({ type: 'claimed', at: Date.now(), workerId: this.o.workerId, fence: this.fence(running) });
    try {
      const { minMs, maxMs, progressReports } = this.o.jobs;
      const stepMs = (minMs + Math.random() * (maxMs - minMs)) / (progressReports + 1);
      for (let i = 1; i <= progressReports + 1 && !running.abortReason; i++) {
        await sleep(stepMs, running.controller.signal);
        if (i <= progressReports && this.frozenUntil === 0) await this.progress(running, i / (progressReports + 1), i);
      }
      if (this.frozenUntil > 0) await sleep(this.frozenUntil - Date.now());
      if (running.abortReason) return null;
      return await this.report(running);
    } finally {
      this.running = null;
      this.frozenUntil = 0;
      if (this.draining) this.hangUp.abort();
    }
  }

  private async progress(running: RunningJob, fraction: number, sequence: number): Promise<void> {
    try {
      await this.o.client.progress(running.job.id, { ...running.fence, stage: 'render', fraction, sequence });
    } catch (error) {
      // Progress is advisory; only a stale answer matters: the attempt is over.
      if (error instanceof FleetApiError && error.status === 409) this.lose(running);
    }
  }

  private async report(running: RunningJob): Promise<ClaimedJob | null> {
    const { failRate, retryableShare } = this.o.jobs;
    const fence = this.fence(running);
    const claimNext = this.draining || this.stopped ? undefined : { workerId: this.o.workerId, waitMs: 0 };
    const request: StatusRequest = Math.random() < failRate
      ? Math.random() < retryableShare
        ? { ...running.fence, status: 'failed', error: { code: 'sim_transient', message: 'simulated transient failure', retryable: true }, claimNext }
        : { ...running.fence, status: 'failed', error: { code: 'sim_bad_input', message: 'simulated permanent failure', retryable: false }, claimNext }
      // The result names the attempt that made it, so the audit can tell whose result was published.
      : { ...running.fence, status: 'completed', result: { videoKey: `jobs/${fence.jobId}/attempt-${fence.attempt}/out.mp4`, workerId: this.o.workerId, ...fence }, claimNext };
    const sentAt = Date.now();
    const delivery = await deliverFinalStatus(this.o.client, running, request, quiet, { policy: OUTAGE_POLICY });
    const { workerId } = this.o;
    if (delivery.kind === 'accepted') {
      const status = request.status as 'completed' | 'failed';
      this.o.emit({ type: 'status_accepted', at: Date.now(), sentAt, workerId, fence, status, state: delivery.response.state });
      return delivery.response.next ?? null;
    }
    if (delivery.kind === 'stale') this.o.emit({ type: 'status_refused', at: Date.now(), workerId, fence, code: delivery.code });
    return null;
  }

  private lose(running: RunningJob): void {
    if (running.abortReason) return;
    running.abort('lease_lost');
    this.o.emit({ type: 'lease_lost', at: Date.now(), workerId: this.o.workerId, fence: this.fence(running) });
  }

  private fence(running: RunningJob): Fence {
    return { jobId: running.job.id, attempt: running.job.attempt, leaseToken: running.job.leaseToken };
  }
}
