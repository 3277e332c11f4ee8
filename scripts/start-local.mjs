// `npm start`: the fleet on this machine. Starts the orchestrator on an embedded PostgreSQL (unless
// DATABASE_URL is set) with local keys, then one local worker (dev model set, local storage), and,
// when the queue is empty, runs a demo through the public API: avatar.prepare of samples/face.jpg
// and a lipsync of samples/speech.m4a. It prints where the finished mp4 is and keeps serving.
// Storage keys are per owner (the name of an API key): each owner's objects live under
// `tenants/<owner>/` in the storage folder, so the samples are copied into every owner's folder.
//
// Stopping (Ctrl-C, SIGTERM): this script alone sequences it. The children run in process groups
// of their own, so the terminal's SIGINT reaches only this script, which stops the worker first (it
// finishes or releases its job and deregisters), then the orchestrator (which stops PostgreSQL
// last). Each child has an IPC channel to this script; when the script dies however it dies, the
// channel closes and the children stop themselves, so none is left behind.
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
// `npm start` builds first; the orchestrator hands each job this prefix for its owner.
const { storagePrefixOf } = createRequire(import.meta.url)(path.join(root, 'contracts/dist/src/protocol/storage-prefix.js'));
/** The owner name of the local product key, when API_KEYS is not set. */
const LOCAL_OWNER = 'local';
// LOCAL_DATA_DIR: another home for keys, storage, models and the database (tests use a scratch one).
const dataDir = path.resolve(process.env.LOCAL_DATA_DIR || path.join(root, '.data'));
const keysFile = path.join(dataDir, 'local-keys.json');

/**
 * Keys for local runs, made once and kept in .data/ so restarts and scripts keep working. A keys
 * file from before operator keys existed gets one added.
 */
function localKeys() {
  const kept = existsSync(keysFile) ? JSON.parse(readFileSync(keysFile, 'utf8')) : {};
  const keys = {
    product: kept.product ?? `local-${randomBytes(16).toString('hex')}`,
    operator: kept.operator ?? `ops-${randomBytes(16).toString('hex')}`,
    internal: kept.internal ?? `internal-${randomBytes(16).toString('hex')}`,
  };
  if (JSON.stringify(keys) !== JSON.stringify(kept)) {
    mkdirSync(dataDir, { recursive: true });
    writeFileSync(keysFile, JSON.stringify(keys, null, 2), { mode: 0o600 });
  }
  return keys;
}

const keys = localKeys();
const storageDir = path.join(dataDir, 'storage');
const modelDir = process.env.MODEL_DIR ?? path.join(dataDir, 'models');
/** The processes this script started: `orchestrator`, then `worker`. */
const children = {};
let stopping = false;
/** Cancels the demo's requests when stopping, so it does not wait out a long-poll. */
const demoAbort = new AbortController();

/** Prefixes a child's lines, so the orchestrator's and the worker's logs stay apart. */
function relay(stream, prefix, onLine) {
  let rest = '';
  stream.on('data', (chunk) => {
    const lines = (rest + chunk.toString()).split('\n');
    rest = lines.pop() ?? '';
    for (const line of lines) {
      process.stdout.write(`${prefix}${line}\n`);
      onLine?.(line);
    }
  });
}

/** The dev model set, written once into .data/models unless real models are there. */
function ensureModels() {
  if (existsSync(path.join(modelDir, 'musetalk', 'metadata.json'))) return;
  const made = spawnSync(process.execPath, [path.join(root, 'worker/dist/src/cli/models-dev.js'), '--dir', modelDir], { stdio: 'inherit' });
  if (made.status !== 0) throw new Error('could not write the dev model set');
}

function startWorker(url) {
  ensureModels();
  for (const owner of owners(env.API_KEYS)) {
    const samples = path.join(storageDir, storagePrefixOf(owner), 'samples');
    mkdirSync(samples, { recursive: true });
    for (const file of ['face.jpg', 'speech.m4a']) copyFileSync(path.join(root, 'samples', file), path.join(samples, file));
  }
  const worker = spawn(process.execPath, [path.join(root, 'worker/dist/src/main.js')], {
    cwd: root,
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
    env: {
      ...process.env,
      WORKER_MODE: 'buffer', ORCHESTRATOR_BASE_URL: url, INTERNAL_API_KEY: env.INTERNAL_API_KEY,
      STORAGE_DRIVER: 'local', LOCAL_STORAGE_DIR: storageDir, MODEL_DIR: modelDir,
      WORKER_PROVIDER: 'local', GPU_CLASS: process.env.GPU_CLASS ?? 'local',
      // A CPU machine has no nvidia-smi to say how much VRAM it has; declare enough for both kinds.
      GPU_VRAM_GB: process.env.GPU_VRAM_GB ?? '8', EXECUTION_PROVIDER: process.env.EXECUTION_PROVIDER ?? 'cpu',
      WORKER_PORT: process.env.WORKER_PORT ?? '0',
    },
  });
  children.worker = worker;
  process.stdout.write(`[worker] started, pid ${worker.pid}\n`);
  relay(worker.stderr, '[worker] ');
  relay(worker.stdout, '[worker] ', (line) => {
    if (!/ INFO  ready /.test(line)) return;
    void demo(url).catch((error) => {
      // Stopping cuts the demo short; that is no failure worth a line.
      if (!stopping) process.stdout.write(`demo failed: ${error.message}\n`);
    });
  });
  worker.on('exit', (code, signal) => process.stdout.write(`[worker] exited with ${code ?? signal}\n`));
}

/** The owner names of API_KEYS (`name:key` pairs). */
function owners(apiKeys) {
  return apiKeys.split(',').map((pair) => pair.trim().split(':')[0]).filter(Boolean);
}

async function api(url, method, route, body) {
  const res = await fetch(`${url}${route}`, {
    method,
    signal: demoAbort.signal,
    headers: { Authorization: `Bearer ${keys.product}`, 'Content-Type': 'application/json' },
    body: body && JSON.stringify(body),
  });
  const json = await res.json();
  if (!res.ok) throw new Error(`${method} ${route}: ${res.status} ${json.error?.message ?? ''}`);
  return json;
}

/** Waits for a job to end, a minute at a time (the API's longest wait). */
async function finished(url, id) {
  for (;;) {
    const job = await api(url, 'GET', `/v1/jobs/${id}?waitMs=60000`);
    if (['succeeded', 'failed', 'cancelled'].includes(job.state)) return job;
  }
}

/** The demo, when nothing else is queued: prepare the sample face, then lip-sync the sample speech. */
async function demo(url) {
  if (process.env.API_KEYS) return; // the local product key is not one of yours
  const queued = await api(url, 'GET', '/v1/jobs?state=queued&limit=1');
  if (queued.items.length > 0) return;
  process.stdout.write('\ndemo: avatar.prepare of samples/face.jpg, then lipsync of samples/speech.m4a\n');
  const started = Date.now();
  const prepare = await finished(url, (await api(url, 'POST', '/v1/jobs', { kind: 'avatar.prepare', input: { source: 'samples/face.jpg', avatarId: 'demo' } })).id);
  if (prepare.state !== 'succeeded') throw new Error(`avatar.prepare ${prepare.state}: ${prepare.error?.message}`);
  const job = await finished(url, (await api(url, 'POST', '/v1/jobs', { kind: 'lipsync', input: { avatarId: 'demo', audio: 'samples/speech.m4a' } })).id);
  if (job.state !== 'succeeded') throw new Error(`lipsync ${job.state}: ${job.error?.message}`);
  // The result's key is relative to the owner's folder, as the product sees its storage.
  const video = path.join(storageDir, storagePrefixOf(LOCAL_OWNER), job.result.videoKey);
  if (!existsSync(video)) throw new Error(`the lipsync result ${job.result.videoKey} is not in ${path.dirname(video)}`);
  process.stdout.write(
    `\ndemo finished in ${((Date.now() - started) / 1000).toFixed(1)} s: ${video}\n` +
      `  (${job.result.frameCount} frames, ${job.result.durationSec} s; the dev model set draws a placeholder mouth, not real lip-sync)\n\n`,
  );
}
const env = {
  ...process.env,
  API_KEYS: process.env.API_KEYS ?? `${LOCAL_OWNER}:${keys.product}`,
  INTERNAL_API_KEY: process.env.INTERNAL_API_KEY ?? keys.internal,
  OPERATOR_KEYS: process.env.OPERATOR_KEYS ?? `local-ops:${keys.operator}`,
  EMBEDDED_PG_DIR: process.env.EMBEDDED_PG_DIR ?? path.join(dataDir, 'postgres'),
};
// A larger young generation: the request path allocates a lot, and scavenges were ~13 % of its CPU.
const orchestrator = spawn(process.execPath, ['--max-semi-space-size=32', path.join(root, 'orchestrator/dist/src/main.js')], {
  cwd: root,
  env,
  detached: true,
  stdio: ['ignore', 'pipe', 'inherit', 'ipc'],
});
children.orchestrator = orchestrator;
process.stdout.write(`[orchestrator] started, pid ${orchestrator.pid}\n`);
let announced = false;
orchestrator.stdout.on('data', (chunk) => {
  process.stdout.write(chunk);
  const match = !announced && /orchestrator listening on (http:\/\/\S+)/.exec(chunk.toString());
  if (!match || stopping) return;
  announced = true;
  if (process.env.LOCAL_WORKER !== '0') startWorker(match[1]);
  const url = match[1];
  const productKey = process.env.API_KEYS ? '<a key from API_KEYS>' : keys.product;
  process.stdout.write(
    [
      '',
      'avatar-fleet is up (Ctrl-C stops it):',
      `  product API   ${url}/v1        key: ${productKey}`,
      `  operator API  ${url}/v1/workers, ${url}/metrics  key: ${process.env.OPERATOR_KEYS ? '<a key from OPERATOR_KEYS>' : keys.operator}`,
      `  worker API    ${url}/internal  enrolment key: ${process.env.INTERNAL_API_KEY ? '<INTERNAL_API_KEY>' : keys.internal}`,
      `  API docs      ${url}/docs`,
      `  health        ${url}/health`,
      '  keys are kept in .data/local-keys.json; data in .data/postgres',
      '',
      'Try it:',
      `  curl -s -X POST ${url}/v1/jobs -H 'Authorization: Bearer ${productKey}' -H 'Content-Type: application/json' \\`,
      `    -d '{"kind":"lipsync","input":{"avatarId":"demo","audio":"samples/speech.m4a"}}'`,
      '',
    ].join('\n'),
  );
});

const running = (child) => child !== undefined && child.exitCode === null && child.signalCode === null;
const exited = (child) =>
  running(child) ? new Promise((resolve) => child.once('exit', (code, signal) => resolve(code ?? (signal ? 1 : 0)))) : Promise.resolve(child?.exitCode ?? 0);

/** The worker first, so it can deregister while the orchestrator still answers; then the orchestrator. */
async function stopAll(signal) {
  demoAbort.abort();
  if (running(children.worker)) {
    children.worker.kill(signal);
    await exited(children.worker);
  }
  if (running(orchestrator)) orchestrator.kill(signal);
  return exited(orchestrator);
}

for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.on(signal, () => {
    if (stopping) {
      // Asked again: the worker releases its running job at once instead of letting it finish.
      if (running(children.worker)) children.worker.kill(signal);
      return;
    }
    stopping = true;
    process.stdout.write(`\n${signal}: stopping the worker, then the orchestrator (again to release running jobs at once)\n`);
    void stopAll(signal).then((code) => process.exit(code));
  });
}
orchestrator.on('exit', (code, signal) => {
  if (stopping) return;
  // It stopped by itself (a crash, or it could not start): the worker has nothing left to talk to.
  stopping = true;
  process.stdout.write(`[orchestrator] exited with ${code ?? signal}\n`);
  void stopAll('SIGTERM').then(() => process.exit(code ?? 1));
});
// Should this script exit any other way (an uncaught error), its children are told to stop too.
process.on('exit', () => {
  for (const child of Object.values(children)) if (running(child)) child.kill('SIGTERM');
});
