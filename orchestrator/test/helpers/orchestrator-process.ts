import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { FleetClient, OperatorClient, WorkerClient } from '@avatar-fleet/contracts';

export const API_KEY = 'test-product-key-0123456789';
/** The owner name of API_KEY: its jobs' storage keys live under `tenants/product/`. */
export const API_KEY_OWNER = 'product';
export const OTHER_API_KEY = 'test-other-key-0123456789ab';
export const INTERNAL_KEY = 'test-internal-key-0123456789';
export const OPERATOR_KEY = 'test-operator-key-0123456789';

const MAIN = path.resolve(__dirname, '../../src/main.js');
/** The runtime flags every orchestrator launch uses (npm start, the image); see docs/operations.md. */
export const ORCHESTRATOR_NODE_FLAGS = ['--max-semi-space-size=32'];

export interface OrchestratorProcess {
  url: string;
  proc: ChildProcess;
  /** Everything the process printed so far, stdout and stderr. */
  output(): string;
  fleet(key?: string): FleetClient;
  /** An operator's client (OPERATOR_KEY unless given). */
  operator(key?: string): OperatorClient;
  worker(key?: string): WorkerClient;
  /** SIGTERM and wait for exit. */
  stop(): Promise<number | null>;
  /** SIGKILL and wait for exit. */
  kill(): Promise<void>;
}

/** Starts `orchestrator/dist/src/main.js` as a real process on a free port against `databaseUrl`. */
export async function startOrchestratorProcess(
  databaseUrl: string,
  env: Record<string, string> = {},
  nodeArgs: string[] = [],
): Promise<OrchestratorProcess> {
  const proc = spawn(process.execPath, [...ORCHESTRATOR_NODE_FLAGS, ...nodeArgs, MAIN], {
    env: {
      PATH: process.env.PATH ?? '',
      NO_COLOR: '1',
      DATABASE_URL: databaseUrl,
      PORT: '0',
      API_KEYS: `${API_KEY_OWNER}:${API_KEY},other:${OTHER_API_KEY}`,
      INTERNAL_API_KEY: INTERNAL_KEY,
      OPERATOR_KEYS: `ops:${OPERATOR_KEY}`,
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  proc.stdout!.on('data', (d: Buffer) => (output += d.toString()));
  proc.stderr!.on('data', (d: Buffer) => (output += d.toString()));
  const exited = new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)));
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => {
      // Not left running behind the caller's back: nobody would ever stop it.
      proc.kill('SIGKILL');
      reject(new Error(`orchestrator did not start in 120 s:\n${output}`));
    }, 120_000); // a hang guard: a loaded machine may take several seconds
    const onData = () => {
      const match = /orchestrator listening on (http:\/\/\S+)/.exec(output);
      if (match) {
        clearTimeout(timer);
        resolve(match[1]!);
      }
    };
    proc.stdout!.on('data', onData);
    proc.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`orchestrator exited with ${code} before listening:\n${output}`));
    });
  });
  return {
    url,
    proc,
    output: () => output,
    fleet: (key = API_KEY) => new FleetClient({ baseUrl: url, apiKey: key }),
    operator: (key = OPERATOR_KEY) => new OperatorClient({ baseUrl: url, apiKey: key }),
    worker: (key = INTERNAL_KEY) => new WorkerClient({ baseUrl: url, apiKey: key }),
    async stop() {
      proc.kill('SIGTERM');
      return exited;
    },
    async kill() {
      proc.kill('SIGKILL');
      await exited;
    },
  };
}
