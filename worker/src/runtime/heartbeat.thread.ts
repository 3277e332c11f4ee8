/**
 * The heartbeat thread's entry (see heartbeat.ts). Beats every `intervalMs` on a fixed cadence,
 * and warns when the real gap drifts more than 20 % from it.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { FleetApiError, WorkerClient } from '@avatar-fleet/contracts';
import type { FromHeartbeatThread, HeartbeatState, HeartbeatThreadData, ToHeartbeatThread } from './heartbeat';
import { BeatCadence } from './heartbeat-cadence';
import { createLogger, errorMessage } from './logger';
import { TelemetrySampler } from './telemetry';

const data = workerData as HeartbeatThreadData;
const port = parentPort!;
const log = createLogger(data.logLevel, { thread: 'heartbeat' });
const client = new WorkerClient({ baseUrl: data.baseUrl, apiKey: data.apiKey, timeoutMs: Math.max(2_000, data.intervalMs) });
const sampler = new TelemetrySampler();
const cadence = new BeatCadence(data.intervalMs);

let state: HeartbeatState = data.state;
let stopping = false;
let timer: NodeJS.Timeout | undefined;
let failures = 0;

port.on('message', (message: ToHeartbeatThread) => {
  if (message.type === 'state') state = message.state;
  else if (message.type === 'token') client.useToken(data.workerId, message.token);
  else {
    stopping = true;
    if (timer) clearTimeout(timer);
    port.close();
  }
});

async function beat(): Promise<void> {
  const drift = cadence.started(performance.now());
  if (drift) {
    log.warn('heartbeat interval drifted more than 20 %', drift);
    if (!stopping) port.postMessage({ type: 'drift', ...drift } satisfies FromHeartbeatThread);
  }
  const sent = state.leases;
  try {
    const telemetry = await sampler.sample();
    const reply = await client.heartbeat(data.workerId, { activity: state.activity, leases: sent, telemetry, executionProvider: data.executionProvider });
    if (failures > 0) log.info('heartbeats reach the orchestrator again', { after: failures });
    failures = 0;
    if (!stopping) port.postMessage({ type: 'reply', reply, sent } satisfies FromHeartbeatThread);
  } catch (error) {
    failures++;
    const status = error instanceof FleetApiError ? error.status : 0;
    const code = error instanceof FleetApiError ? error.code : 'internal_error';
    // One line when the streak starts and then every tenth, not one per beat during an outage.
    if (failures === 1 || failures % 10 === 0) log.warn('heartbeat failed', { failures, reason: errorMessage(error) });
    if (!stopping) port.postMessage({ type: 'failed', status, code, message: errorMessage(error) } satisfies FromHeartbeatThread);
  }
  if (stopping) return;
  timer = setTimeout(() => void beat(), cadence.delay(performance.now()));
}

void beat();
