/**
 * A child process of the simulator that runs `workers` simulated workers, each with its own
 * WorkerClient (its own connections), against the orchestrator at `url`. A drained worker is
 * replaced by a fresh one, so the process keeps its capacity. Every id starts with `prefix.`, which
 * is how the driver knows whose leases a SIGKILL of this process ended.
 *
 *   parent -> child  { type: 'freeze', ms }   one busy worker stops beating and reporting for ms
 *   parent -> child  { type: 'stop' }         stop claiming, deregister, exit
 *   child -> parent  { type: 'event', event } | { type: 'froze', ok } | { type: 'stopped' }
 */
import { WorkerClient } from '@avatar-fleet/contracts';
import type { SimEvent } from './events';
import { SimWorker, type JobBehaviour } from './sim-worker';

export interface HostConfig {
  url: string;
  apiKey: string;
  prefix: string;
  workers: number;
  gpuClass: string;
  jobs: JobBehaviour;
}

export type ToHost = { type: 'freeze'; ms: number } | { type: 'stop' };
export type FromHost = { type: 'event'; event: SimEvent } | { type: 'froze'; ok: boolean } | { type: 'stopped' };

const send = (message: FromHost) => process.send!(message);

function main(config: HostConfig): void {
  const workers = new Set<SimWorker>();
  const lives: Promise<void>[] = [];
  let replacements = 0;
  let stopping = false;

  const start = (workerId: string) => {
    const worker = new SimWorker({
      workerId,
      client: new WorkerClient({ baseUrl: config.url, apiKey: config.apiKey, timeoutMs: 10_000 }),
      gpuClass: config.gpuClass,
      jobs: config.jobs,
      emit: (event) => send({ type: 'event', event }),
    });
    workers.add(worker);
    lives.push(worker.run().then((end) => {
      workers.delete(worker);
      if (end === 'drained' && !stopping) start(`${config.prefix}.d${++replacements}`);
    }));
  };
  for (let i = 0; i < config.workers; i++) start(`${config.prefix}.w${i}`);

  process.on('message', (message: ToHost) => {
    if (message.type === 'freeze') {
      const busy = [...workers].filter((w) => w.busy);
      const pick = busy[Math.floor(Math.random() * busy.length)];
      send({ type: 'froze', ok: pick ? pick.freeze(message.ms) : false });
    } else {
      stopping = true;
      for (const worker of workers) worker.stop();
      // Replacements started meanwhile are in `lives` too; wait until every life has ended.
      const settle = async (): Promise<void> => {
        const count = lives.length;
        await Promise.all(lives);
        if (lives.length !== count) return settle();
      };
      // Keep-alive sockets would hold the process open: exit once the parent has the answer.
      void settle().then(() => process.send!({ type: 'stopped' } satisfies FromHost, () => process.exit(0)));
    }
  });
  // The parent going away (it was killed, or it exited) leaves nobody to stop this process.
  process.on('disconnect', () => process.exit(0));
}

main(JSON.parse(process.argv[2]!) as HostConfig);
