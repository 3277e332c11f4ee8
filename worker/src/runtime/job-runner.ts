import { mkdtemp, rm } from 'node:fs/promises';
import type { ClassConstructor } from 'class-transformer';
import path from 'node:path';
import {
  ErrorCode, FleetApiError, JOB_KINDS, JobErrorCode, MAX_FAILURE_MESSAGE, STORAGE_PREFIX_PATTERN, validateDto,
  type AddressPolicy, type ClaimedJob, type JobFailure, type JobKind, type WorkerClient,
} from '@avatar-fleet/contracts';
import { PipelineError, type Handler, type HandlerMap, type JobContext } from '../pipelines/pipeline';
import { ScopedStorage } from '../storage/scoped-storage';
import { attemptKey, type ObjectStorage } from '../storage/storage';
import { errorMessage, type Logger } from './logger';

/** Why a running job was stopped from outside its handler. */
export type AbortReason = 'cancelled' | 'lease_lost' | 'timeout' | 'shutdown';

export type JobOutcome =
  | { kind: 'completed'; result: Record<string, unknown> }
  | { kind: 'failed'; error: JobFailure }
  /** Nothing to report: the lease is gone, or shutdown releases the job by deregistering. */
  | { kind: 'abandoned'; reason: 'lease_lost' | 'shutdown' };

/** The leased job a worker is running, its fencing token, and the switch that stops it. */
export class RunningJob {
  readonly controller = new AbortController();
  private reason?: AbortReason;

  constructor(readonly job: Pick<ClaimedJob, 'id' | 'kind' | 'input' | 'attempt' | 'leaseToken' | 'timeoutSec' | 'storagePrefix'>) {}

  get fence(): { attempt: number; leaseToken: string } {
    return { attempt: this.job.attempt, leaseToken: this.job.leaseToken };
  }

  get abortReason(): AbortReason | undefined {
    return this.reason;
  }

  /** The first reason wins: a job cancelled and then lost stays cancelled. */
  abort(reason: AbortReason): void {
    if (this.reason) return;
    this.reason = reason;
    this.controller.abort(new Error(`job ${reason.replace('_', ' ')}`));
  }
}

export interface JobRunnerDeps {
  handlers: HandlerMap;
  /** The whole bucket; a job with a storage prefix sees only its owner's part of it. */
  storage: ObjectStorage;
  client: WorkerClient;
  scratchRoot: string;
  /** The addresses job media URLs may reach. */
  mediaAccess: AddressPolicy;
  log: Logger;
  /** Minimum gap between progress sends (a stage change is sent at once). */
  progressIntervalMs?: number;
}

/**
 * Runs one leased job through its handler: validates the input, gives the handler a scratch folder
 * (always removed), an abort signal (cancel, lost lease, time-out, shutdown) and a throttled
 * progress reporter, and turns whatever happens into a JobOutcome. Never throws.
 */
export async function runJob(running: RunningJob, deps: JobRunnerDeps): Promise<JobOutcome> {
  const { job } = running;
  const log = deps.log.child({ job: job.id, attempt: job.attempt, kind: job.kind });
  const handler = deps.handlers[job.kind] as Handler<JobKind> | undefined;
  if (!handler) return failed(JobErrorCode.UnsupportedKind, `this worker has no pipeline for ${job.kind}`, false);
  const checked = validateDto(JOB_KINDS[job.kind].input as ClassConstructor<object>, job.input);
  if (!checked.ok) {
    const detail = checked.fields.map((p) => `${p.field}: ${p.problems.join(', ')}`).join('; ');
    return failed('invalid_input', `input rejected by the worker: ${detail}`, false);
  }
  const prefix = job.storagePrefix;
  if (prefix !== undefined && !STORAGE_PREFIX_PATTERN.test(prefix)) {
    return failed('invalid_storage_prefix', `the job's storage prefix "${prefix}" is not tenants/<owner>/ with a plain owner name`, false);
  }
  // Without a prefix (an orchestrator from before owners had namespaces) keys are the bucket's own.
  const storage = prefix === undefined ? deps.storage : new ScopedStorage(deps.storage, prefix);
  const timeout = setTimeout(() => running.abort('timeout'), job.timeoutSec * 1000);
  const progress = new ProgressReporter(running, deps.client, log, deps.progressIntervalMs ?? 250);
  let scratchDir: string;
  try {
    scratchDir = await mkdtemp(path.join(deps.scratchRoot, `job-${job.id.slice(0, 8)}-`));
  } catch (error) {
    clearTimeout(timeout);
    log.error('no scratch folder for the job', { reason: errorMessage(error) });
    return failed('scratch_unavailable', `could not create a scratch folder: ${errorMessage(error)}`, true);
  }
  const ctx: JobContext = {
    job: { id: job.id, kind: job.kind, attempt: job.attempt },
    log,
    signal: running.controller.signal,
    progress: (stage, fraction, message) => progress.report(stage, fraction, message),
    storage,
    putOutput: (name, file, contentType) => storage.putFile(attemptKey(job.id, job.attempt, name), file, { contentType, signal: running.controller.signal }),
    scratchDir,
    mediaAccess: deps.mediaAccess,
  };
  const started = Date.now();
  log.info('job started');
  try {
    const result = (await handler(checked.value as never, ctx)) as unknown as Record<string, unknown>;
    if (running.abortReason) return aborted(running.abortReason);
    log.info('job finished', { ms: Date.now() - started });
    return { kind: 'completed', result };
  } catch (error) {
    if (running.abortReason) {
      log.warn('job stopped', { reason: running.abortReason, ms: Date.now() - started });
      return aborted(running.abortReason);
    }
    if (error instanceof PipelineError) return failed(error.code, error.message, error.retryable);
    log.error('job failed', { reason: errorMessage(error) });
    return failed('pipeline_error', errorMessage(error), true);
  } finally {
    clearTimeout(timeout);
    await progress.flush();
    await rm(scratchDir, { recursive: true, force: true });
  }
}

/** The orchestrator refuses a longer message (JobFailure): a failure about a huge input must still be reported. */
function failed(code: string, message: string, retryable: boolean): JobOutcome {
  return { kind: 'failed', error: { code, message: message.slice(0, MAX_FAILURE_MESSAGE), retryable } };
}

function aborted(reason: AbortReason): JobOutcome {
  switch (reason) {
    case 'cancelled':
      return failed(JobErrorCode.Cancelled, 'cancelled on request', false);
    case 'timeout':
      return failed(JobErrorCode.Timeout, 'the attempt ran past its time-out', true);
    case 'lease_lost':
    case 'shutdown':
      return { kind: 'abandoned', reason };
  }
}

/**
 * Sends progress at most every `intervalMs` (newest report wins; a stage change goes at once),
 * one request at a time. The reply is how a running job learns of a cancel or a lost lease between
 * heartbeats. Progress is advisory: a failed send is logged at debug and dropped.
 */
class ProgressReporter {
  private sequence = 0;
  private pending?: { stage: string; fraction: number; message?: string };
  private lastStage?: string;
  private lastSent = 0;
  private inFlight?: Promise<void>;
  private timer?: NodeJS.Timeout;

  constructor(
    private readonly running: RunningJob,
    private readonly client: WorkerClient,
    private readonly log: Logger,
    private readonly intervalMs: number,
  ) {}

  report(stage: string, fraction: number, message?: string): void {
    this.pending = { stage, fraction: Math.min(1, Math.max(0, fraction)), message };
    const due = stage !== this.lastStage ? 0 : Math.max(0, this.lastSent + this.intervalMs - Date.now());
    if (this.inFlight || this.timer) return;
    this.timer = setTimeout(() => this.send(), due);
  }

  private send(): void {
    this.timer = undefined;
    const report = this.pending;
    if (!report || this.running.abortReason) return;
    this.pending = undefined;
    this.lastStage = report.stage;
    this.lastSent = Date.now();
    this.inFlight = this.client
      .progress(this.running.job.id, { ...this.running.fence, ...report, sequence: ++this.sequence })
      .then((reply) => {
        if (reply.cancelRequested) this.running.abort('cancelled');
      })
      .catch((error: unknown) => {
        if (error instanceof FleetApiError && error.status === 409) {
          this.running.abort(error.code === ErrorCode.JobCancelled ? 'cancelled' : 'lease_lost');
        } else this.log.debug('progress not delivered', { reason: errorMessage(error) });
      })
      .finally(() => {
        this.inFlight = undefined;
        if (this.pending) this.report(this.pending.stage, this.pending.fraction, this.pending.message);
      });
  }

  /** Stops the timer and waits for the send in flight, so no progress lands after the final status. */
  async flush(): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.pending = undefined;
    await this.inFlight;
  }
}
