/**
 * Every HTTP path of the fleet. The internal paths are the ones GPU hosts already call
 * (see shared/seeds/003): never rename them.
 */
export const Routes = {
  product: {
    jobs: '/v1/jobs',
    job: (id: string) => `/v1/jobs/${encodeURIComponent(id)}`,
    cancelJob: (id: string) => `/v1/jobs/${encodeURIComponent(id)}/cancel`,
    retryJob: (id: string) => `/v1/jobs/${encodeURIComponent(id)}/retry`,
    workers: '/v1/workers',
    workerCommand: (id: string) => `/v1/workers/${encodeURIComponent(id)}/command`,
    revokeWorker: (id: string) => `/v1/workers/${encodeURIComponent(id)}/revoke`,
    reinstateWorker: (id: string) => `/v1/workers/${encodeURIComponent(id)}/reinstate`,
  },
  internal: {
    register: '/internal/buffer/workers/register',
    heartbeat: (workerId: string) => `/internal/buffer/workers/${encodeURIComponent(workerId)}/heartbeat`,
    deregister: (workerId: string) => `/internal/buffer/workers/${encodeURIComponent(workerId)}/deregister`,
    claim: '/internal/buffer/jobs/claim',
    status: (jobId: string) => `/internal/buffer/jobs/${encodeURIComponent(jobId)}/status`,
    progress: (jobId: string) => `/internal/jobs/${encodeURIComponent(jobId)}/progress`,
  },
  ops: { health: '/health', metrics: '/metrics', docs: '/docs' },
} as const;

/** The longest a claim or a job wait may park on the server. Clients time out a little later. */
export const MAX_CLAIM_WAIT_MS = 25_000;
export const MAX_JOB_WAIT_MS = 60_000;
