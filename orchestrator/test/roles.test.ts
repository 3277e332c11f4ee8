import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { Routes, type ClaimedJob, type ErrorBody } from '@avatar-fleet/contracts';
import { lane, lipsyncJob, workerRegistration } from './helpers/fixtures';
import { API_KEY, INTERNAL_KEY, OPERATOR_KEY } from './helpers/orchestrator-process';
import { useOrchestrator } from './helpers/orchestrator-suite';

/** The five kinds of caller: a product key, an operator key, a worker's own token, the enrolment key, nobody. */
const CREDENTIALS = ['product', 'operator', 'worker', 'enrolment', 'none'] as const;
type Credential = (typeof CREDENTIALS)[number];

/** What a route acts on, made fresh for each request: the request may use it up. */
interface Fixture {
  workerId: string;
  token: string;
  jobId: string;
  lease: ClaimedJob;
}

interface Route {
  method: 'GET' | 'POST';
  /** As the OpenAPI document writes it. */
  path: string;
  request(f: Fixture): { path: string; body?: unknown };
  /** Expected status per credential. */
  expect: Record<Credential, number>;
}

const p = (product: number, operator: number, worker: number, enrolment: number, none: number): Record<Credential, number> =>
  ({ product, operator, worker, enrolment, none });
/** Product keys: their own jobs. Operators: every job and the fleet. Workers: the internal API. Enrolment: register. */
const JOBS = p(200, 200, 403, 403, 401);
const FLEET = p(403, 200, 403, 403, 401);
const WORKER = p(403, 403, 200, 403, 401);
const PUBLIC = p(200, 200, 200, 200, 200);
const fence = (f: Fixture) => ({ attempt: f.lease.attempt, leaseToken: f.lease.leaseToken });

const ROUTES: Route[] = [
  { method: 'POST', path: '/v1/jobs', request: () => ({ path: Routes.product.jobs, body: lipsyncJob() }), expect: p(201, 403, 403, 403, 401) },
  { method: 'GET', path: '/v1/jobs', request: () => ({ path: Routes.product.jobs }), expect: JOBS },
  { method: 'GET', path: '/v1/jobs/{id}', request: (f) => ({ path: Routes.product.job(f.jobId) }), expect: JOBS },
  { method: 'POST', path: '/v1/jobs/{id}/cancel', request: (f) => ({ path: Routes.product.cancelJob(f.jobId), body: {} }), expect: JOBS },
  { method: 'POST', path: '/v1/jobs/{id}/retry', request: (f) => ({ path: Routes.product.retryJob(f.lease.id), body: {} }), expect: JOBS },
  { method: 'GET', path: '/v1/workers', request: () => ({ path: Routes.product.workers }), expect: FLEET },
  { method: 'POST', path: '/v1/workers/{id}/command', request: (f) => ({ path: Routes.product.workerCommand(f.workerId), body: { command: 'drain' } }), expect: FLEET },
  { method: 'POST', path: '/v1/workers/{id}/revoke', request: (f) => ({ path: Routes.product.revokeWorker(f.workerId), body: {} }), expect: FLEET },
  { method: 'POST', path: '/v1/workers/{id}/reinstate', request: (f) => ({ path: Routes.product.reinstateWorker(f.workerId), body: {} }), expect: FLEET },
  {
    method: 'POST', path: '/internal/buffer/workers/register',
    request: () => ({ path: Routes.internal.register, body: workerRegistration({ gpuClass: lane() }) }), expect: p(403, 403, 403, 200, 401),
  },
  {
    method: 'POST', path: '/internal/buffer/workers/{id}/heartbeat',
    request: (f) => ({ path: Routes.internal.heartbeat(f.workerId), body: { activity: 'busy', leases: [{ jobId: f.lease.id, ...fence(f) }] } }), expect: WORKER,
  },
  { method: 'POST', path: '/internal/buffer/workers/{id}/deregister', request: (f) => ({ path: Routes.internal.deregister(f.workerId), body: {} }), expect: WORKER },
  { method: 'POST', path: '/internal/buffer/jobs/claim', request: (f) => ({ path: Routes.internal.claim, body: { workerId: f.workerId, waitMs: 0 } }), expect: WORKER },
  { method: 'POST', path: '/internal/buffer/jobs/{id}/status', request: (f) => ({ path: Routes.internal.status(f.lease.id), body: { ...fence(f), status: 'running' } }), expect: WORKER },
  {
    method: 'POST', path: '/internal/jobs/{id}/progress',
    request: (f) => ({ path: Routes.internal.progress(f.lease.id), body: { ...fence(f), stage: 'render', fraction: 0.5, sequence: 1 } }), expect: WORKER,
  },
  { method: 'GET', path: '/health', request: () => ({ path: Routes.ops.health }), expect: PUBLIC },
  { method: 'GET', path: '/metrics', request: () => ({ path: Routes.ops.metrics }), expect: p(403, 200, 403, 403, 401) },
  { method: 'GET', path: '/docs', request: () => ({ path: Routes.ops.docs }), expect: PUBLIC },
];

describe('roles: every route answers each kind of caller as its role allows', () => {
  const suite = useOrchestrator();

  /**
   * A worker with its own token, in its own GPU class, holding a leased job (then cancelled by
   * the product, so retry has something to retry once the lease is handed back), and a queued job
   * of its class that claim can take. Fresh for every request.
   */
  async function fixture(): Promise<Fixture> {
    const gpuClass = lane();
    const registration = await suite.worker.register(workerRegistration({ gpuClass }));
    await suite.fleet.createJob(lipsyncJob({ requirements: { gpuClass } }));
    const lease = (await suite.worker.claim(registration.workerId, 0))!.job;
    const queued = await suite.fleet.createJob(lipsyncJob({ requirements: { gpuClass } }));
    return { workerId: registration.workerId, token: registration.token, jobId: queued.id, lease };
  }

  const keyOf = (credential: Credential, f: Fixture): string | null =>
    ({ product: API_KEY, operator: OPERATOR_KEY, worker: f.token, enrolment: INTERNAL_KEY, none: null })[credential];

  test('the matrix covers every route the API documents', async () => {
    const doc = (await (await fetch(`${suite.orch.url}/docs-json`)).json()) as { paths: Record<string, Record<string, unknown>> };
    const documented = Object.entries(doc.paths).flatMap(([path, methods]) => Object.keys(methods).map((m) => `${m.toUpperCase()} ${path}`));
    const covered = new Set(ROUTES.map((r) => `${r.method} ${r.path}`));
    assert.deepEqual(documented.filter((route) => !covered.has(route)), []);
  });

  for (const route of ROUTES) {
    test(`${route.method} ${route.path}`, async () => {
      const seen: Record<string, number> = {};
      for (const credential of CREDENTIALS) {
        const f = await fixture();
        // Retry needs a job in a state it can retry: the leased one, cancelled and handed back.
        if (route.path.endsWith('/retry')) {
          await suite.fleet.cancelJob(f.lease.id);
          await suite.worker.status(f.lease.id, { ...fence(f), status: 'failed', error: { code: 'cancelled', message: 'stopped', retryable: false } });
        }
        const { path, body } = route.request(f);
        const key = keyOf(credential, f);
        const res = await fetch(`${suite.orch.url}${path}`, {
          method: route.method,
          headers: { ...(key ? { Authorization: `Bearer ${key}` } : {}), ...(body ? { 'Content-Type': 'application/json' } : {}) },
          body: body ? JSON.stringify(body) : undefined,
        });
        const text = await res.text();
        seen[credential] = res.status;
        if (res.status === 403) {
          const { error } = JSON.parse(text) as ErrorBody;
          // The refusal names what the route takes: a key variable or the worker's token.
          assert.match(error.message, /API_KEYS|OPERATOR_KEYS|INTERNAL_API_KEY|token/, `${credential}: ${error.message}`);
        }
        // Claim answers 200 with the queued job; either 2xx is what a worker may get.
        if (res.status === 204) seen[credential] = 200;
      }
      assert.deepEqual(seen, route.expect);
    });
  }
});
