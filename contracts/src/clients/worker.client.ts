import type { AxiosInstance, AxiosRequestConfig } from 'axios';
import type {
  ClaimResponse, ClaimedJob, DeregisterRequest, DeregisterResponse, HeartbeatRequest, HeartbeatResponse, ProgressRequest,
  ProgressResponse, RegisterWorkerRequest, RegisterWorkerResponse, StatusRequest, StatusResponse,
} from '../protocol/worker.dto';
import { Routes } from '../routes';
import { createHttp, send, type ClientOptions } from './http';

/** Jobs whose worker the client remembers, so that status and progress carry that worker's token. */
const MAX_REMEMBERED_JOBS = 10_000;

/**
 * The GPU worker's client for `/internal`. `apiKey` is the enrolment key (INTERNAL_API_KEY): it
 * registers, and each registration's token then authenticates every call made for that worker.
 * One client may act for several workers (tests, the simulator): each call goes out with the token
 * of the worker it is for, and status and progress with the token of the worker that claimed the
 * job. Without a token for the worker (a legacy orchestrator), the enrolment key is sent.
 */
export class WorkerClient {
  private readonly http: AxiosInstance;
  private readonly enrolmentKey: string;
  private readonly tokens = new Map<string, string>();
  private readonly jobWorkers = new Map<string, string>();
  /** Why the last claim that found nothing found nothing, as the orchestrator put it. */
  noJobReason: string | null = null;
  /** The first worker this client registered: a worker process's own, whose token reports the jobs it did not claim. */
  private ownWorker?: string;

  constructor(options: ClientOptions) {
    this.http = createHttp(options);
    this.enrolmentKey = options.apiKey;
  }

  async register(request: RegisterWorkerRequest): Promise<RegisterWorkerResponse> {
    const reply = (await send<RegisterWorkerResponse>(this.http, {
      method: 'POST', url: Routes.internal.register, data: request, headers: bearer(this.enrolmentKey),
    }))!;
    if (reply.token) this.useToken(reply.workerId, reply.token);
    this.ownWorker ??= reply.workerId;
    return reply;
  }

  /** Authenticates later calls for `workerId` with `token` (a registration made by another client). */
  useToken(workerId: string, token: string): void {
    this.tokens.set(workerId, token);
  }

  async heartbeat(workerId: string, request: HeartbeatRequest): Promise<HeartbeatResponse> {
    return (await send<HeartbeatResponse>(this.http, this.as(workerId, { method: 'POST', url: Routes.internal.heartbeat(workerId), data: request })))!;
  }

  /**
   * Long-polls for a job; `null` when none arrived within `waitMs`, and then `noJobReason` says why
   * none fits the worker (the orchestrator's `x-no-job-reason`).
   */
  async claim(workerId: string, waitMs: number, signal?: AbortSignal): Promise<ClaimResponse | null> {
    const answer = await send<ClaimResponse>(this.http, this.as(workerId, {
      method: 'POST',
      url: Routes.internal.claim,
      data: { workerId, waitMs },
      timeout: waitMs + 15_000,
      signal,
    }), (headers) => {
      const reason = headers['x-no-job-reason'];
      this.noJobReason = typeof reason === 'string' ? reason : null;
    });
    if (answer) this.claimedBy(answer.job, workerId);
    return answer;
  }

  /** With `request.claimNext`, the answer's `next` holds the worker's next job (long-polled up to its waitMs). */
  async status(jobId: string, request: StatusRequest, signal?: AbortSignal): Promise<StatusResponse> {
    const waitMs = request.claimNext?.waitMs ?? 0;
    const answer = (await send<StatusResponse>(this.http, this.forJob(jobId, request.claimNext?.workerId, {
      method: 'POST',
      url: Routes.internal.status(jobId),
      data: request,
      timeout: waitMs > 0 ? waitMs + 15_000 : undefined,
      signal,
    })))!;
    if (answer.next && request.claimNext) this.claimedBy(answer.next, request.claimNext.workerId);
    return answer;
  }

  async progress(jobId: string, request: ProgressRequest): Promise<ProgressResponse> {
    return (await send<ProgressResponse>(this.http, this.forJob(jobId, undefined, {
      method: 'POST', url: Routes.internal.progress(jobId), data: request,
    })))!;
  }

  async deregister(workerId: string, request: DeregisterRequest = {}): Promise<DeregisterResponse> {
    return (await send<DeregisterResponse>(this.http, this.as(workerId, { method: 'POST', url: Routes.internal.deregister(workerId), data: request })))!;
  }

  /** A call for `workerId`, with its token; without one (a legacy host), with the shared key. */
  private as(workerId: string, config: AxiosRequestConfig): AxiosRequestConfig {
    return { ...config, headers: bearer(this.tokens.get(workerId) ?? this.enrolmentKey) };
  }

  /**
   * A report about a job (its lease token authorises it), with the token of the worker that claimed
   * it through this client, else of `workerId`, else of this client's own worker (a queue-mode
   * worker runs jobs it never claimed), else the shared key.
   */
  private forJob(jobId: string, workerId: string | undefined, config: AxiosRequestConfig): AxiosRequestConfig {
    const candidates = [this.jobWorkers.get(jobId), workerId, this.ownWorker];
    const token = candidates.map((id) => (id ? this.tokens.get(id) : undefined)).find((t) => t !== undefined);
    return { ...config, headers: bearer(token ?? this.enrolmentKey) };
  }

  private claimedBy(job: ClaimedJob, workerId: string): void {
    this.jobWorkers.delete(job.id);
    if (this.jobWorkers.size >= MAX_REMEMBERED_JOBS) this.jobWorkers.delete(this.jobWorkers.keys().next().value!);
    this.jobWorkers.set(job.id, workerId);
  }
}

function bearer(key: string): Record<string, string> {
  return { Authorization: `Bearer ${key}` };
}
