import type { AxiosInstance } from 'axios';
import type { CreateJobRequest, JobView, ListJobsQuery, ListJobsResponse, WorkerView } from '../api/job.dto';
import type { JobInput, JobKind } from '../jobs/job-kinds';
import type { WorkerCommand } from '../protocol/worker.dto';
import { MAX_JOB_WAIT_MS, Routes } from '../routes';
import { createHttp, send, type ClientOptions } from './http';

/** A create request typed by kind: the input must match the kind's DTO. */
export type TypedCreateJob<K extends JobKind> = Omit<CreateJobRequest, 'kind' | 'input'> & {
  kind: K;
  input: JobInput<K>;
};

/** The product backend's client for `/v1`. */
export class FleetClient {
  protected readonly http: AxiosInstance;

  constructor(options: ClientOptions) {
    this.http = createHttp(options);
  }

  async createJob<K extends JobKind>(request: TypedCreateJob<K>): Promise<JobView> {
    return (await send<JobView>(this.http, { method: 'POST', url: Routes.product.jobs, data: request }))!;
  }

  /** With `waitMs`, answers as soon as the job is terminal or the wait is over, whichever is first. */
  async getJob(id: string, options: { waitMs?: number } = {}): Promise<JobView> {
    const waitMs = options.waitMs;
    return (await send<JobView>(this.http, {
      method: 'GET',
      url: Routes.product.job(id),
      params: waitMs === undefined ? undefined : { waitMs },
      timeout: waitMs === undefined ? undefined : Math.min(waitMs, MAX_JOB_WAIT_MS) + 15_000,
    }))!;
  }

  async listJobs(query: ListJobsQuery = {}): Promise<ListJobsResponse> {
    return (await send<ListJobsResponse>(this.http, { method: 'GET', url: Routes.product.jobs, params: query }))!;
  }

  async cancelJob(id: string): Promise<JobView> {
    return (await send<JobView>(this.http, { method: 'POST', url: Routes.product.cancelJob(id), data: {} }))!;
  }

  async retryJob(id: string): Promise<JobView> {
    return (await send<JobView>(this.http, { method: 'POST', url: Routes.product.retryJob(id), data: {} }))!;
  }

}

/**
 * The operator's client: everything a product key can do to jobs (on every owner's jobs), plus the
 * fleet. Made with an operator key (OPERATOR_KEYS).
 */
export class OperatorClient extends FleetClient {
  async listWorkers(): Promise<WorkerView[]> {
    return (await send<WorkerView[]>(this.http, { method: 'GET', url: Routes.product.workers }))!;
  }

  async commandWorker(id: string, command: WorkerCommand | 'none'): Promise<WorkerView> {
    return (await send<WorkerView>(this.http, { method: 'POST', url: Routes.product.workerCommand(id), data: { command } }))!;
  }

  /** Stops the worker, voids its token and bars its id until reinstated; its jobs are requeued. */
  async revokeWorker(id: string): Promise<WorkerView> {
    return (await send<WorkerView>(this.http, { method: 'POST', url: Routes.product.revokeWorker(id), data: {} }))!;
  }

  async reinstateWorker(id: string): Promise<WorkerView> {
    return (await send<WorkerView>(this.http, { method: 'POST', url: Routes.product.reinstateWorker(id), data: {} }))!;
  }

  /** The Prometheus text of `/metrics`. */
  async metrics(): Promise<string> {
    return (await send<string>(this.http, { method: 'GET', url: Routes.ops.metrics, responseType: 'text' }))!;
  }
}
