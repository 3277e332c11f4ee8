import type { AxiosInstance } from 'axios';
import type {
  ClaimResponse, DeregisterRequest, DeregisterResponse, HeartbeatRequest, HeartbeatResponse, ProgressRequest,
  ProgressResponse, RegisterWorkerRequest, RegisterWorkerResponse, StatusRequest, StatusResponse,
} from '../protocol/worker.dto';
import { Routes } from '../routes';
import { createHttp, send, type ClientOptions } from './http';

/** The GPU worker's client for `/internal`, authenticated with `INTERNAL_API_KEY`. */
export class WorkerClient {
  private readonly http: AxiosInstance;

  constructor(options: ClientOptions) {
    this.http = createHttp(options);
  }

  async register(request: RegisterWorkerRequest): Promise<RegisterWorkerResponse> {
    return (await send<RegisterWorkerResponse>(this.http, { method: 'POST', url: Routes.internal.register, data: request }))!;
  }

  async heartbeat(workerId: string, request: HeartbeatRequest): Promise<HeartbeatResponse> {
    return (await send<HeartbeatResponse>(this.http, { method: 'POST', url: Routes.internal.heartbeat(workerId), data: request }))!;
  }

  /** Long-polls for a job; `null` when none arrived within `waitMs`. */
  async claim(workerId: string, waitMs: number, signal?: AbortSignal): Promise<ClaimResponse | null> {
    return send<ClaimResponse>(this.http, {
      method: 'POST',
      url: Routes.internal.claim,
      data: { workerId, waitMs },
      timeout: waitMs + 15_000,
      signal,
    });
  }

  /** With `request.claimNext`, the answer's `next` holds the worker's next job (long-polled up to its waitMs). */
  async status(jobId: string, request: StatusRequest, signal?: AbortSignal): Promise<StatusResponse> {
    const waitMs = request.claimNext?.waitMs ?? 0;
    return (await send<StatusResponse>(this.http, {
      method: 'POST',
      url: Routes.internal.status(jobId),
      data: request,
      timeout: waitMs > 0 ? waitMs + 15_000 : undefined,
      signal,
    }))!;
  }

  async progress(jobId: string, request: ProgressRequest): Promise<ProgressResponse> {
    return (await send<ProgressResponse>(this.http, { method: 'POST', url: Routes.internal.progress(jobId), data: request }))!;
  }

  async deregister(workerId: string, request: DeregisterRequest = {}): Promise<DeregisterResponse> {
    return (await send<DeregisterResponse>(this.http, { method: 'POST', url: Routes.internal.deregister(workerId), data: request }))!;
  }
}
