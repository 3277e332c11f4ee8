/**
 * Every orchestrator route the fuzzer attacks, each with the valid request it mutates and the
 * fixtures that request needs (a leased job, a registered worker, a cancelled job, ...). Fixtures
 * are made through the typed clients, the way a product backend and a worker would make them.
 */
import type { ClaimedJob, FleetClient, WorkerClient } from '@avatar-fleet/contracts';
import { lane, lipsyncJob, registerWorker, workerRegistration } from './fixtures';
import type { Rng } from './fuzz-values';

export type Auth = 'product' | 'internal' | 'none';

/** A request that the orchestrator accepts as it stands; the fuzzer changes one thing in it. */
export interface ValidRequest {
  /** The path parameter: the job or worker the request acts on. */
  param?: string;
  body?: unknown;
  query?: Record<string, string>;
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

  constructor(
    readonly product: FleetClient,
    readonly other: FleetClient,
    readonly worker: WorkerClient,
  ) {}

  /** A registered worker alone in its own GPU class, so it claims only the jobs made for it. */
  async workerIn(gpuClass: string, workerId?: string): Promise<string> {
    const id = await registerWorker(this.worker, { gpuClass, ...(workerId ? { workerId } : {}) });
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

  /** A job leased to `workerId`, whose GPU class is `gpuClass`. */
  async leasedJob(workerId: string, gpuClass: string): Promise<Lease> {
    await this.queuedJob(gpuClass);
    const claim = await this.worker.claim(workerId, 0);
    if (!claim) throw new Error(`fuzz fixture: worker ${workerId} could not claim the job made for it`);
    this.related.push(claim.job.leaseToken);
    return toLease(claim.job);
  }

  /**
   * What requests must not touch: another worker holding a lease, another key owner's job, a
   * worker that deregistered, and ids of the right shape that name nothing.
   */
  async victims(): Promise<void> {
    const gpuClass = lane();
    await this.leasedJob(await this.workerIn(gpuClass), gpuClass);
    await this.queuedJob(lane(), this.other);
    const gone = await this.workerIn(lane());
    await this.worker.deregister(gone, { reason: 'fuzz: gone' });
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
    name: 'GET /v1/workers', method: 'GET', route: '/v1/workers', auth: 'product',
    async setup() {
      return { valid: () => ({}) };
    },
  },
  {
    name: 'POST /v1/workers/:id/command', method: 'POST', route: '/v1/workers/:param/command', auth: 'product', paramField: 'id',
    async setup(world) {
      const id = await world.workerIn(lane());
      return { valid: (rng) => ({ param: id, body: { command: rng.pick(['drain', 'shutdown', 'none']) } }) };
    },
  },
  {
    name: 'POST /internal/buffer/workers/register', method: 'POST', route: '/internal/buffer/workers/register', auth: 'internal',
    async setup() {
      const body = workerRegistration({ workerId: `fuzz-${lane()}`, gpuClass: lane(), slots: 2, hourlyCost: 0.35, executionProvider: 'cuda' });
      return { valid: () => ({ body }) };
    },
  },
  {
    name: 'POST /internal/buffer/workers/:id/heartbeat', method: 'POST', route: '/internal/buffer/workers/:param/heartbeat', auth: 'internal',
    paramField: 'workerId',
    async setup(world) {
      const gpuClass = lane();
      const id = await world.workerIn(gpuClass);
      const held = await world.leasedJob(id, gpuClass);
      return {
        valid: (rng) => ({
          param: id,
          body: { activity: rng.pick(['busy', 'idle', 'draining']), leases: [held], telemetry: TELEMETRY, executionProvider: 'cuda' },
        }),
      };
    },
  },
  {
    name: 'POST /internal/buffer/workers/:id/deregister', method: 'POST', route: '/internal/buffer/workers/:param/deregister', auth: 'internal',
    paramField: 'workerId',
    async setup(world) {
      const gpuClass = lane();
      const id = await world.workerIn(gpuClass);
      return {
        valid: () => ({ param: id, body: { reason: 'fuzz: scale down' } }),
        renew: async () => void (await world.workerIn(gpuClass, id)),
      };
    },
  },
  {
    name: 'POST /internal/buffer/jobs/claim', method: 'POST', route: '/internal/buffer/jobs/claim', auth: 'internal', keep: ['waitMs'],
    async setup(world) {
      const gpuClass = lane();
      const id = await world.workerIn(gpuClass);
      await world.queuedJob(gpuClass);
      // A claim that took the job leaves none: make the next, so no valid claim has to park.
      return { valid: () => ({ body: { workerId: id, waitMs: 0 } }), renew: async () => void (await world.queuedJob(gpuClass)) };
    },
  },
  {
    name: 'POST /internal/buffer/jobs/:id/status', method: 'POST', route: '/internal/buffer/jobs/:param/status', auth: 'internal',
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
        valid: (rng) => ({ param: held.jobId, body: rng.pick(bodies)() }),
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
    name: 'POST /internal/jobs/:id/progress', method: 'POST', route: '/internal/jobs/:param/progress', auth: 'internal', paramField: 'id',
    async setup(world) {
      const gpuClass = lane();
      const held = await world.leasedJob(await world.workerIn(gpuClass), gpuClass);
      let sequence = 0;
      return {
        valid: () => ({
          param: held.jobId,
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
  ...['/health', '/metrics', '/docs-json'].map((route): Endpoint => ({
    name: `GET ${route}`, method: 'GET', route, auth: 'none',
    async setup() {
      return { valid: () => ({}) };
    },
  })),
];
