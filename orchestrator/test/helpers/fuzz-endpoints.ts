/**
 * Every orchestrator route the fuzzer attacks, each with the valid request it mutates and the
 * fixtures that request needs (a leased job, a registered worker, a cancelled job, ...). Fixtures
 * are made through the typed clients, the way a product backend and a worker would make them.
 */
import type { Pool } from 'pg';
import type { ClaimedJob, FleetClient, OperatorClient, WorkerClient } from '@avatar-fleet/contracts';
import { lane, lipsyncJob, workerRegistration } from './fixtures';
import type { Rng } from './fuzz-values';
import { leaseFor } from './lease-for';

/** The credential a route takes: a product, operator or enrolment key, a worker's own token, or none. */
export type Auth = 'product' | 'operator' | 'enrolment' | 'worker' | 'none';

/** A request that the orchestrator accepts as it stands; the fuzzer changes one thing in it. */
export interface ValidRequest {
  /** The path parameter: the job or worker the request acts on. */
  param?: string;
  body?: unknown;
  query?: Record<string, string>;
  /** For `worker` routes: the token of the worker the request acts for. */
  key?: string;
}

export interface EndpointFixture {
  valid(rng: Rng): ValidRequest;
  /** After a 2xx: replace what the request may have used up (a lease, a queued job, a worker). */
  renew?(response: unknown): Promise<void>;
}

export interface Endpoint {
  name: string;
  method: 'GET' | 'POST';
  /** The path, with `:param` where the id goes. */
  route: string;
  auth: Auth;
  /** The field a 400 about the path parameter names. */
  paramField?: string;
  /** Body fields never deleted: without them the request would park (a claim's default wait is 20 s). */
  keep?: string[];
  /** When this field changes, a 400 may blame these instead (the field decides what else is required). */
  related?: Record<string, string[]>;
  setup(world: FuzzWorld): Promise<EndpointFixture>;
}

export interface Lease {
  jobId: string;
  attempt: number;
  leaseToken: string;
}

const toLease = (job: ClaimedJob): Lease => ({ jobId: job.id, attempt: job.attempt, leaseToken: job.leaseToken });
const fence = (l: Lease) => ({ attempt: l.attempt, leaseToken: l.leaseToken });

/** The clients and fixture makers every endpoint shares; `related` grows with each fixture made. */
export class FuzzWorld {
  /** Ids and tokens of other jobs, workers and leases: requests act on them as if they were their own. */
  readonly related: string[] = [];
  /** Other workers' tokens, current and stale: credentials a request may try instead of its own. */
  readonly foreignTokens: string[] = [];
  private readonly tokens = new Map<string, string>();

  constructor(
    readonly product: FleetClient,
    readonly other: FleetClient,
    readonly ops: OperatorClient,
    /** Made with the enrolment key; it then acts for each worker it registered with that worker's token. */
    readonly worker: WorkerClient,
    private readonly pool: Pool,
    /** Every secret the answers and the log must never show; each worker token made is added. */
    readonly secrets: string[],
  ) {}

  /** A registered worker alone in its own GPU class, so it claims only the jobs made for it. */
  async workerIn(gpuClass: string, workerId?: string): Promise<string> {
    const { workerId: id, token } = await this.worker.register(workerRegistration({ gpuClass, ...(workerId ? { workerId } : {}) }));
    this.tokens.set(id, token);
    this.secrets.push(token);
    this.related.push(id);
    return id;
  }

  /** The current token of a worker this world registered. */
  tokenOf(workerId: string): string {
    const token = this.tokens.get(workerId);
    if (!token) throw new Error(`fuzz fixture: no token for worker ${workerId}`);
    return token;
  }

  /** A legacy host (seed 003): registered by its first heartbeat, made with the shared key and a GPU_CLASS_NAME. */
  async legacyWorker(gpuClass: string): Promise<string> {
    const id = `legacy-${gpuClass}`;
    // No token for this id: the client sends the shared key.
    await this.worker.heartbeat(id, { gpuClassName: `${gpuClass} (24 GB)` });
    this.related.push(id);
    return id;
  }

  /**
   * Fixture jobs come first in their class and never time out during a run: a claim made for a
   * fixture takes the fixture's job, and the reaper has nothing to end behind the fuzzer's back.
   */
  async queuedJob(gpuClass: string, client = this.product): Promise<string> {
    const job = await client.createJob(lipsyncJob({ requirements: { gpuClass }, priority: 1000, timeoutSec: 86_400 }));
    this.related.push(job.id);
    return job.id;
  }

  async cancelledJob(gpuClass: string): Promise<string> {
    const id = await this.queuedJob(gpuClass);
    await this.product.cancelJob(id);
    return id;
  }

  /**
   * A job leased to `workerId`, whose GPU class is `gpuClass`: claimed with its token, or, for a
   * worker process this world did not register (its token is its own), leased on the orchestrator's side.
   */
  async leasedJob(workerId: string, gpuClass: string): Promise<Lease> {
    await this.queuedJob(gpuClass);
    const job = this.tokens.has(workerId) ? (await this.worker.claim(workerId, 0))?.job : await leaseFor(this.pool, workerId, 86_400);
    if (!job) throw new Error(`fuzz fixture: worker ${workerId} could not claim the job made for it`);
    this.related.push(job.leaseToken);
    return toLease(job);
  }

  /**
   * What requests must not touch: another worker holding a lease, another key owner's job, a
   * worker that deregistered, and ids of the right shape that name nothing.
   */
  async victims(): Promise<void> {
    const gpuClass = lane();
    const holder = await this.workerIn(gpuClass);
    await this.leasedJob(holder, gpuClass);
    this.foreignTokens.push(this.tokenOf(holder));
    await this.queuedJob(lane(), this.other);
    const gone = await this.workerIn(lane());
    await this.worker.deregister(gone, { reason: 'fuzz: gone' });
    // A token its worker's later registration made stale, and one an operator revoked.
    const restarted = await this.workerIn(lane());
    this.foreignTokens.push(this.tokenOf(restarted));
    await this.workerIn(lane(), restarted);
    const revoked = await this.workerIn(lane());
    this.foreignTokens.push(this.tokenOf(revoked));
    await this.ops.revokeWorker(revoked);
    await this.legacyWorker(lane());
    this.related.push('ghost-worker-0001', '00000000-0000-4000-8000-000000000000');
  }
}

const LIPSYNC_CREATE = {
  kind: 'lipsync',
  input: { avatarId: 'fuzz-avatar', audio: 'https://media.example/speech.wav', options: { batchSize: 8, outputHeight: 720, crf: 23 } },
  priority: 5,
  requirements: { gpuClass: 'fuzz-nobody', minVramGb: 8 },
  idempotencyKey: 'fuzz-create',
  webhookUrl: 'https://hooks.example/fleet',
  maxAttempts: 3,
  timeoutSec: 600,
};
const PREPARE_CREATE = { kind: 'avatar.prepare', input: { source: 'uploads/face.jpg', avatarId: 'fuzz-face', fps: 25, bboxShift: 4 } };
const TELEMETRY = {
  gpuUtilPct: 50, gpuMemUsedMb: 1000, gpuMemTotalMb: 24000, gpuTempC: 60, gpuPowerW: 200, cpuPct: 20, memUsedMb: 2000, memTotalMb: 16000,
};

/** A job, queued or leased, that each valid request points at; `renew` replaces it after a request used it up. */
export function renewing<T>(make: () => Promise<T>, valid: (current: T, rng: Rng) => ValidRequest): Promise<EndpointFixture> {
  return make().then((first) => {
    let current = first;
    return {
      valid: (rng) => valid(current, rng),
      async renew() {
        current = await make();
      },
    };
  });
}

export const ENDPOINTS: Endpoint[] = [
  {
    name: 'GET /v1/jobs', method: 'GET', route: '/v1/jobs', auth: 'product',
    async setup(world) {
      const gpuClass = lane();
      await world.queuedJob(gpuClass);
      await world.queuedJob(gpuClass);
      const cursor = (await world.product.listJobs({ limit: 1 })).nextCursor!;
      return { valid: () => ({ query: { state: 'queued', kind: 'lipsync', limit: '1', cursor } }) };
    },
  },
  {
    // The job is terminal, so a valid waitMs answers at once instead of parking.
    name: 'GET /v1/jobs/:id', method: 'GET', route: '/v1/jobs/:param', auth: 'product', paramField: 'id',
    async setup(world) {
      const id = await world.cancelledJob(lane());
      return { valid: () => ({ param: id, query: { waitMs: '0' } }) };
    },
  },
  {
    name: 'POST /v1/jobs/:id/cancel', method: 'POST', route: '/v1/jobs/:param/cancel', auth: 'product', paramField: 'id',
    setup: (world) => renewing(() => world.queuedJob(lane()), (id) => ({ param: id, body: {} })),
  },
  {
    name: 'POST /v1/jobs/:id/retry', method: 'POST', route: '/v1/jobs/:param/retry', auth: 'product', paramField: 'id',
    setup: (world) => renewing(() => world.cancelledJob(lane()), (id) => ({ param: id, body: {} })),
  },
  {
    name: 'GET /v1/workers', method: 'GET', route: '/v1/workers', auth: 'operator',
    async setup() {
      return { valid: () => ({}) };
    },
  },
  {
    name: 'POST /v1/workers/:id/command', method: 'POST', route: '/v1/workers/:param/command', auth: 'operator', paramField: 'id',
    async setup(world) {
      const id = await world.workerIn(lane());
      return { valid: (rng) => ({ param: id, body: { command: rng.pick(['drain', 'shutdown', 'none']) } }) };
    },
  },
  {
    name: 'POST /v1/workers/:id/revoke', method: 'POST', route: '/v1/workers/:param/revoke', auth: 'operator', paramField: 'id',
    setup: (world) => renewing(() => world.workerIn(lane()), (id) => ({ param: id, body: {} })),
  },
  {
    name: 'POST /v1/workers/:id/reinstate', method: 'POST', route: '/v1/workers/:param/reinstate', auth: 'operator', paramField: 'id',
    async setup(world) {
      const id = await world.workerIn(lane());
      await world.ops.revokeWorker(id);
      return { valid: () => ({ param: id, body: {} }), renew: async () => void (await world.ops.revokeWorker(id)) };
    },
  },
  {
    name: 'POST /internal/buffer/workers/register', method: 'POST', route: '/internal/buffer/workers/register', auth: 'enrolment',
    async setup() {
      const body = workerRegistration({ workerId: `fuzz-${lane()}`, gpuClass: lane(), slots: 2, hourlyCost: 0.35, executionProvider: 'cuda' });
      return { valid: () => ({ body }) };
    },
  },
  {
    name: 'POST /internal/buffer/workers/:id/heartbeat', method: 'POST', route: '/internal/buffer/workers/:param/heartbeat', auth: 'worker',
    paramField: 'workerId',
    async setup(world) {
      const gpuClass = lane();
      const id = await world.workerIn(gpuClass);
      const held = await world.leasedJob(id, gpuClass);
      return {
        valid: (rng) => ({
          param: id,
          key: world.tokenOf(id),
          body: { activity: rng.pick(['busy', 'idle', 'draining']), leases: [held], telemetry: TELEMETRY, executionProvider: 'cuda' },
        }),
      };
    },
  },
  {
    // A seed-003 host: the shared key, snake_case, no lease list (every held lease is renewed).
    name: 'POST /internal/buffer/workers/:id/heartbeat (legacy)', method: 'POST', route: '/internal/buffer/workers/:param/heartbeat',
    auth: 'enrolment', paramField: 'workerId',
    async setup(world) {
      const id = await world.legacyWorker(lane());
      return { valid: (rng) => ({ param: id, body: { activity: rng.pick(['busy', 'idle']), gpu_class_name: 'RTX 3090 (24 GB)', telemetry: { gpu_util_pct: 40 } } }) };
    },
  },
  {
    name: 'POST /internal/buffer/workers/:id/deregister', method: 'POST', route: '/internal/buffer/workers/:param/deregister', auth: 'worker',
    paramField: 'workerId',
    async setup(world) {
      const gpuClass = lane();
      const id = await world.workerIn(gpuClass);
      return {
        valid: () => ({ param: id, key: world.tokenOf(id), body: { reason: 'fuzz: scale down' } }),
        renew: async () => void (await world.workerIn(gpuClass, id)),
      };
    },
  },
  {
    name: 'POST /internal/buffer/jobs/claim', method: 'POST', route: '/internal/buffer/jobs/claim', auth: 'worker', keep: ['waitMs'],
    async setup(world) {
      const gpuClass = lane();
      const id = await world.workerIn(gpuClass);
      await world.queuedJob(gpuClass);
      // A claim that took the job leaves none: make the next, so no valid claim has to park.
      return { valid: () => ({ key: world.tokenOf(id), body: { workerId: id, waitMs: 0 } }), renew: async () => void (await world.queuedJob(gpuClass)) };
    },
  },
  {
    name: 'POST /internal/buffer/jobs/:id/status', method: 'POST', route: '/internal/buffer/jobs/:param/status', auth: 'worker',
    paramField: 'id', related: { status: ['result', 'error', 'claimNext'] },
    async setup(world) {
      const gpuClass = lane();
      const workerId = await world.workerIn(gpuClass);
      let held = await world.leasedJob(workerId, gpuClass);
      // A spare queued job: claimNext finds one at once instead of parking for its waitMs.
      await world.queuedJob(gpuClass);
      const claimNext = { workerId, waitMs: 0 };
      const bodies = [
        () => ({ ...fence(held), status: 'running' }),
        () => ({ ...fence(held), status: 'completed', result: { videoKey: `jobs/${held.jobId}/out.mp4`, durationSec: 2, frameCount: 50 }, claimNext }),
        () => ({ ...fence(held), status: 'completed', result: { videoKey: 'out.mp4', durationSec: 1, frameCount: 25 } }),
        () => ({ ...fence(held), status: 'failed', error: { code: 'media_unreadable', message: 'bad audio', retryable: true }, claimNext }),
      ];
      return {
        valid: (rng) => ({ param: held.jobId, key: world.tokenOf(workerId), body: rng.pick(bodies)() }),
        async renew(response) {
          const answer = response as { state?: string; next?: ClaimedJob | null } | null;
          if (answer?.state === 'running') return;
          held = answer?.next ? toLease(answer.next) : await world.leasedJob(workerId, gpuClass);
          await world.queuedJob(gpuClass);
        },
      };
    },
  },
  {
    name: 'POST /internal/jobs/:id/progress', method: 'POST', route: '/internal/jobs/:param/progress', auth: 'worker', paramField: 'id',
    async setup(world) {
      const gpuClass = lane();
      const workerId = await world.workerIn(gpuClass);
      const held = await world.leasedJob(workerId, gpuClass);
      let sequence = 0;
      return {
        valid: () => ({
          param: held.jobId,
          key: world.tokenOf(workerId),
          body: { ...fence(held), stage: 'render', fraction: 0.5, sequence: ++sequence, message: 'frame 10 of 20' },
        }),
      };
    },
  },
  {
    // Last: the jobs it makes may have no GPU class, and a claim fuzzed earlier would take them.
    name: 'POST /v1/jobs', method: 'POST', route: '/v1/jobs', auth: 'product',
    related: { kind: ['input'], 'input.avatarId': ['input.sourceVideo'] },
    async setup() {
      return { valid: (rng) => ({ body: rng.chance(0.6) ? LIPSYNC_CREATE : PREPARE_CREATE }) };
    },
  },
  ...([['/health', 'none'], ['/metrics', 'operator'], ['/docs-json', 'none']] as const).map(([route, auth]): Endpoint => ({
    name: `GET ${route}`, method: 'GET', route, auth,
    async setup() {
      return { valid: () => ({}) };
    },
  })),
];
