import { createHash } from 'node:crypto';
import { Injectable, type BeforeApplicationShutdown, type OnModuleInit } from '@nestjs/common';
import {
  AddressPolicy, ErrorCode, JOB_KINDS, TERMINAL_STATES, validateDto, type CreateJobRequest, type FieldProblem, type JobView, type ListJobsQuery,
  type ListJobsResponse,
} from '@avatar-fleet/contracts';
import { ApiError } from '../common/api-error';
import { OrchestratorConfig } from '../config/orchestrator.config';
import { Database } from '../database/database';
import { Channels } from '../database/notify-listener';
import { JobRepository, type ListPosition, type TransitionOutcome } from './job.repository';
import { JobWaiters } from './job-waiters';
import { webhookUrlProblem } from './webhook-url';

@Injectable()
export class JobsService implements OnModuleInit, BeforeApplicationShutdown {
  private readonly waiters = new JobWaiters();
  /** Set at shutdown: waiting GETs answer with the job as it is, so the HTTP server can close without waiting out their waits. */
  private closing = false;
  /** The addresses job webhooks may reach: public ones, plus WEBHOOK_ALLOW. */
  private readonly webhookAccess: AddressPolicy;

  constructor(
    private readonly db: Database,
    private readonly jobs: JobRepository,
    config: OrchestratorConfig,
  ) {
    this.webhookAccess = new AddressPolicy(config.webhookAllow());
  }

  onModuleInit(): void {
    this.db.listener.on(Channels.jobFinished, (ids) => ids.split(',').forEach((id) => this.waiters.wake(id)));
    this.db.listener.onReconnect(() => this.waiters.wakeAll());
  }

  beforeApplicationShutdown(): void {
    this.closing = true;
    this.waiters.wakeAll();
  }

  async create(owner: string, req: CreateJobRequest): Promise<{ job: JobView; created: boolean }> {
    const spec = JOB_KINDS[req.kind];
    const input = validateDto<object>(spec.input, req.input);
    const problems: FieldProblem[] = input.ok ? [] : input.fields.map((f) => ({ ...f, field: `input.${f.field}` }));
    const webhook = req.webhookUrl === undefined ? undefined : await webhookUrlProblem(req.webhookUrl, this.webhookAccess);
    if (webhook) problems.push({ field: 'webhookUrl', problems: [webhook] });
    if (!input.ok || problems.length) throw ApiError.validation(problems);
    const policy = spec.policy;
    const outcome = await this.jobs.create(this.db.pool, {
        owner,
        kind: req.kind,
        // Stored as validated, with the DTO's defaults filled in, so workers see exactly what was accepted.
        input: { ...input.value },
        priority: req.priority ?? 0,
        gpuClass: req.requirements?.gpuClass ?? null,
        minVramGb: Math.max(policy.requirements.minVramGb, req.requirements?.minVramGb ?? 0),
        idempotencyKey: req.idempotencyKey ?? null,
        requestHash: hashRequest(req),
        webhookUrl: req.webhookUrl ?? null,
        maxAttempts: req.maxAttempts ?? policy.maxAttempts,
        timeoutSec: req.timeoutSec ?? policy.timeoutSec,
        backoffBaseMs: policy.backoff.baseMs,
        backoffMaxMs: policy.backoff.maxMs,
    });
    // Parked claimers on this replica need not wait for the NOTIFY to come back from PostgreSQL.
    if (outcome.kind === 'created') this.db.listener.emitLocal(Channels.jobsQueued, outcome.job.kind);
    if (outcome.kind === 'conflict') {
      throw new ApiError(409, ErrorCode.IdempotencyConflict, 'idempotencyKey was already used for a different request');
    }
    return { job: outcome.job, created: outcome.kind === 'created' };
  }

  /** With waitMs, answers as soon as the job is terminal, or with its current state when the wait is over. */
  async get(owner: string | null, id: string, waitMs = 0, signal?: AbortSignal): Promise<JobView> {
    let job = await this.jobs.get(this.db.pool, owner, id);
    if (!job) throw ApiError.notFound(`job ${id}`);
    if (waitMs <= 0 || isTerminal(job) || this.closing) return job;
    const stop = new AbortController();
    signal?.addEventListener('abort', () => stop.abort(), { once: true });
    // Park first, then look again: a completion between the two reads still wakes us.
    const parked = this.waiters.wait(id, waitMs, stop.signal);
    job = (await this.jobs.get(this.db.pool, owner, id))!;
    if (isTerminal(job)) {
      stop.abort();
      return job;
    }
    await parked;
    // Nobody is listening for the answer any more; the request must not outlive its connection.
    if (signal?.aborted) return job;
    return (await this.jobs.get(this.db.pool, owner, id)) ?? job;
  }

  async list(owner: string | null, query: ListJobsQuery): Promise<ListJobsResponse> {
    const limit = query.limit ?? 50;
    const after = query.cursor ? decodeCursor(query.cursor) : undefined;
    const page = await this.jobs.list(this.db.pool, owner, { state: query.state, kind: query.kind, limit, after });
    return { items: page.items, nextCursor: page.items.length === limit && page.last ? encodeCursor(page.last) : null };
  }

  async cancel(owner: string | null, id: string): Promise<JobView> {
    return unwrap(id, await this.jobs.cancel(this.db.pool, owner, id), 'cancel');
  }

  async retry(owner: string | null, id: string): Promise<JobView> {
    return unwrap(id, await this.jobs.retry(this.db.pool, owner, id), 'retry');
  }
}

function isTerminal(job: JobView): boolean {
  return TERMINAL_STATES.includes(job.state);
}

function unwrap(id: string, outcome: TransitionOutcome, verb: string): JobView {
  if (outcome.kind === 'ok') return outcome.job;
  if (outcome.kind === 'missing') throw ApiError.notFound(`job ${id}`);
  throw new ApiError(409, ErrorCode.InvalidState, `cannot ${verb} job ${id}: it is ${outcome.state}`);
}

/** A stable hash of the parts of a create request that define the job (key order does not matter). */
function hashRequest(req: CreateJobRequest): string {
  const canonical = (value: unknown): unknown =>
    Array.isArray(value) ? value.map(canonical)
    : value && typeof value === 'object' ? Object.fromEntries(Object.keys(value).sort().map((k) => [k, canonical((value as Record<string, unknown>)[k])]))
    : value;
  return createHash('sha256').update(JSON.stringify(canonical({ ...req }))).digest('hex');
}

function encodeCursor(position: ListPosition): string {
  return Buffer.from(`${position.createdUs}.${position.id}`).toString('base64url');
}

/**
 * A cursor comes back from the client, so each part is checked as PostgreSQL will read it: a real
 * UUID (not 36 of its characters in any order), and a creation time whose microseconds fit the
 * bigint and timestamptz it becomes (16 digits reach the year 2286).
 */
const CURSOR_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const CURSOR_CREATED_US = /^\d{1,16}$/;

function decodeCursor(cursor: string): ListPosition {
  const [createdUs, id] = Buffer.from(cursor, 'base64url').toString().split('.');
  if (!createdUs || !CURSOR_CREATED_US.test(createdUs) || !id || !CURSOR_ID.test(id)) {
    throw ApiError.validation([{ field: 'cursor', problems: ['cursor must be a nextCursor returned by a previous page'] }]);
  }
  return { createdUs, id };
}
