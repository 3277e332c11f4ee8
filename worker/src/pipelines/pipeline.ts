import type { AddressPolicy, JobInput, JobKind, JobResult } from '@avatar-fleet/contracts';
import { JOB_KIND_NAMES } from '@avatar-fleet/contracts';
import type { Logger } from '../runtime/logger';
import type { ObjectStorage, StoredObject } from '../storage/storage';
import type { ModelLoader } from '../inference/model-loader';

/** What a handler gets besides its input. Everything it must stop on arrives through `signal`. */
export interface JobContext {
  job: { id: string; kind: JobKind; attempt: number };
  log: Logger;
  /** Aborted on cancel, lost lease, time-out or shutdown; pass it to ffmpeg and every wait. */
  signal: AbortSignal;
  /** Reports a stage and a fraction in [0, 1]; cheap to call often (sends are throttled). */
  progress(stage: string, fraction: number, message?: string): void;
  /**
   * The job's owner's namespace (storage/scoped-storage.ts): keys the job names, reads and reports
   * are relative to `tenants/<owner>/`, so one owner's keys never reach another's objects.
   */
  storage: ObjectStorage;
  /** Uploads a scratch file under this attempt's own key prefix. */
  putOutput(name: string, file: string, contentType?: string): Promise<StoredObject>;
  /** A fresh folder for this job, deleted when it ends however it ends. */
  scratchDir: string;
  /** The addresses the job's media URLs may reach (see contracts/src/net/address-guard.ts). */
  mediaAccess: AddressPolicy;
}

/** A pipeline step is a plain function: validated input in, JSON result out. */
export type Handler<K extends JobKind> = (input: JobInput<K>, ctx: JobContext) => Promise<JobResult<K>>;

/** One handler per kind, typed from the contracts' kind map. */
export type HandlerMap = { [K in JobKind]?: Handler<K> };

/** What the pipelines report once their models are loaded and warmed. */
export interface LoadReport {
  executionProvider: string;
  models: string[];
}

/** Settings from the worker's configuration that the pipelines use. */
export interface PipelineOptions {
  /** `auto`: h264_nvenc when a test encode with it works here, else libx264. */
  videoEncoder: 'auto' | 'libx264' | 'h264_nvenc';
}

/** The pipelines a worker build carries: its handlers and the start-up step that loads their models. */
export interface PipelineSet {
  handlers: HandlerMap;
  /** Loads and warms every model the handlers need; runs before the worker registers or reports healthy. */
  load(models: ModelLoader, log: Logger, options?: PipelineOptions): Promise<LoadReport>;
}

/** A failure the handler classifies itself; anything else thrown is reported as retryable `pipeline_error`. */
export class PipelineError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly retryable = false,
  ) {
    super(message);
    this.name = 'PipelineError';
  }
}

/**
 * The kinds this worker takes: `wanted` (WORKER_KINDS) or every kind with a handler. Throws when a
 * wanted kind has no handler, a handler is not a function, or the build has no pipelines at all.
 */
export function resolveKinds(handlers: HandlerMap, wanted?: JobKind[]): JobKind[] {
  const problems: string[] = [];
  for (const [kind, handler] of Object.entries(handlers)) {
    if (!JOB_KIND_NAMES.includes(kind as JobKind)) problems.push(`handler for unknown job kind "${kind}"`);
    else if (typeof handler !== 'function') problems.push(`handler for ${kind} is not a function`);
  }
  const available = JOB_KIND_NAMES.filter((k) => typeof handlers[k] === 'function');
  const kinds = wanted ?? available;
  for (const kind of kinds) if (!available.includes(kind)) problems.push(`WORKER_KINDS names ${kind}, but this build has no pipeline for it`);
  if (kinds.length === 0) problems.push('this build has no pipeline for any job kind');
  if (problems.length) throw new Error(`pipelines: ${problems.join('; ')}`);
  return kinds;
}
