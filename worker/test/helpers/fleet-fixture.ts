import { mkdtempSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { INTERNAL_KEY } from '@avatar-fleet/orchestrator/dist/test/helpers/orchestrator-process';
import { eventually, lane, lipsyncJob } from '@avatar-fleet/orchestrator/dist/test/helpers/fixtures';
import { storagePrefixOf, type FleetClient, type JobView } from '@avatar-fleet/contracts';
import { startWorkerProcess, type WorkerProcess } from './worker-process';

/** Orchestrator settings for worker tests: fast beats, short leases, a quick reaper. */
export const FAST_FLEET = { HEARTBEAT_INTERVAL_SEC: '1', LEASE_TTL_SEC: '5', REAPER_INTERVAL_MS: '200', CLAIM_POLL_MS: '1000' };

/** One test's corner of the fleet: its own GPU class (so no other test's worker takes its jobs) and folders. */
export class Lane {
  readonly gpuClass = lane();
  readonly storageDir = mkdtempSync(path.join(os.tmpdir(), 'fleet-storage-'));
  readonly modelDir = mkdtempSync(path.join(os.tmpdir(), 'fleet-models-'));
  private readonly workers: WorkerProcess[] = [];

  constructor(
    private readonly orchestratorUrl: () => string,
    private readonly fleet: () => FleetClient,
  ) {}

  env(extra: Record<string, string> = {}): Record<string, string> {
    return {
      WORKER_MODE: 'buffer', ORCHESTRATOR_BASE_URL: this.orchestratorUrl(), INTERNAL_API_KEY: INTERNAL_KEY,
      GPU_CLASS: this.gpuClass, GPU_VRAM_GB: '24', STORAGE_DRIVER: 'local', LOCAL_STORAGE_DIR: this.storageDir,
      MODEL_DIR: this.modelDir, WORKER_PROVIDER: 'local', EXECUTION_PROVIDER: 'cpu', WORKER_PORT: '0', ...extra,
    };
  }

  /** Starts a worker and waits until it says ready. */
  async worker(extra: Record<string, string> = {}): Promise<WorkerProcess> {
    const worker = startWorkerProcess(this.env(extra));
    this.workers.push(worker);
    await worker.waitFor(/ready/);
    return worker;
  }

  async job(audio = 'https://media.example/speech.wav'): Promise<string> {
    return (await this.fleet().createJob(lipsyncJob({ input: { avatarId: 'avatar-1', audio }, requirements: { gpuClass: this.gpuClass } }))).id;
  }

  /** Waits until the job satisfies `check`. */
  until(id: string, check: (job: JobView) => boolean, timeoutMs = 120_000): Promise<JobView> {
    return eventually(async () => {
      const job = await this.fleet().getJob(id);
      return check(job) ? job : undefined;
    }, timeoutMs, 50);
  }

  /** The output file a result points at, read from the local storage folder: its key is relative to the job's owner's namespace. */
  output(job: JobView): string {
    return readFileSync(path.join(this.storageDir, storagePrefixOf(job.owner), String(job.result!.videoKey)), 'utf8');
  }

  async cleanup(): Promise<void> {
    for (const w of this.workers) if (w.proc.exitCode === null && w.proc.signalCode === null) w.signal('SIGKILL');
    await Promise.all(this.workers.map((w) => w.exited));
  }
}

export function workerIdOf(worker: WorkerProcess): string {
  const match = /registered workerId=(\S+)/.exec(worker.output());
  if (!match) throw new Error(`worker has not registered:\n${worker.output()}`);
  return match[1]!;
}
