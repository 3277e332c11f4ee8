import http from 'node:http';
import {
  JOB_KINDS, QueueJobEnvelope, answerMalformedRequest, describeProblems, validateDto, type FieldProblem, type QueueJobOutcome,
} from '@avatar-fleet/contracts';
import type { FleetWorker } from './fleet-worker';
import { RunningJob } from './job-runner';
import { errorMessage } from './logger';

const MAX_BODY_BYTES = 1024 * 1024;

/**
 * The worker's HTTP server (port 8000 by default), in both modes: `/hc` is healthy only once models
 * are loaded and the worker is registered, `/ping` answers whenever the process is up (container
 * health checks use them). In queue mode (Salad Job Queue) the sidecar also forwards each job to
 * `POST /generate` and stores the answer as the job's output. Status codes tell Salad whether a
 * retry is worth it: 4xx never (a malformed envelope, a stale attempt), 503/502 yes (busy, not
 * ready, the orchestrator unreachable).
 */
export function startWorkerServer(worker: FleetWorker, port: number, host = '0.0.0.0'): Promise<http.Server> {
  const server = http.createServer((req, res) => {
    void route(worker, req, res).catch((error: unknown) => {
      worker.log.error('queue request failed', { reason: errorMessage(error) });
      if (!res.headersSent) send(res, 500, { error: { code: 'internal_error', message: 'the worker failed to handle the request' } });
    });
  });
  server.keepAliveTimeout = 65_000;
  server.on('clientError', answerMalformedRequest);
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve(server));
  });
}

async function route(worker: FleetWorker, req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
  const url = (req.url ?? '/').split('?')[0];
  if (req.method === 'GET' && url === '/ping') return send(res, 200, { ok: true });
  if (req.method === 'GET' && url === '/hc') {
    const healthy = worker.ready && !worker.stopRequested;
    return send(res, healthy ? 200 : 503, { status: healthy ? 'ready' : worker.stopRequested ? 'stopping' : 'loading' });
  }
  if (url === '/generate' && req.method === 'POST') {
    if (worker.config.mode !== 'queue') return send(res, 409, problem('wrong_mode', 'this worker runs in buffer mode: it claims its jobs itself'));
    return generate(worker, req, res);
  }
  if (url === '/generate' || url === '/hc' || url === '/ping') return send(res, 405, problem('method_not_allowed', `${req.method} is not allowed on ${url}`));
  return send(res, 404, problem('not_found', `no route ${req.method} ${url}`));
}

async function generate(worker: FleetWorker, req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
  const body = await readJson(req);
  if (!body.ok) return send(res, body.status, invalid(body.status === 413 ? 'payload_too_large' : 'validation_failed', [{ field: body.field, problems: [body.message] }]));
  const checked = validateDto(QueueJobEnvelope, body.value);
  if (!checked.ok) return send(res, 400, invalid('validation_failed', checked.fields));
  const envelope = checked.value;
  if (!worker.ready || worker.stopRequested || worker.draining) {
    const why = worker.stopRequested ? 'the worker is stopping' : worker.draining ? 'the worker is draining' : 'models are still loading';
    return send(res, 503, problem('not_ready', why));
  }
  if (worker.running.size >= worker.config.slots) return send(res, 503, problem('busy', 'every slot of this worker is running a job'));
  if (worker.running.has(envelope.jobId)) return send(res, 409, problem('duplicate', `job ${envelope.jobId} is already running here`));

  const running = new RunningJob({
    id: envelope.jobId, kind: envelope.kind, input: envelope.input, attempt: envelope.attempt, leaseToken: envelope.leaseToken,
    timeoutSec: envelope.timeoutSec ?? JOB_KINDS[envelope.kind].policy.timeoutSec, storagePrefix: envelope.storagePrefix,
  });
  // Salad hung up (its own time-out): stop work nobody will collect; the orchestrator requeues it.
  res.on('close', () => {
    if (!res.writableFinished) running.abort('shutdown');
  });
  const { outcome, delivery } = await worker.execute(running);
  const answer: QueueJobOutcome = { jobId: envelope.jobId, attempt: envelope.attempt, status: outcome.kind };
  if (outcome.kind === 'completed') answer.result = outcome.result;
  if (outcome.kind === 'failed') answer.error = outcome.error;
  if (!delivery) return send(res, 409, { ...answer, error: { code: 'lease_lost', message: 'the attempt was abandoned: its lease is gone', retryable: false } });
  if (delivery.kind === 'stale') return send(res, 409, { ...answer, error: { code: delivery.code, message: 'the orchestrator no longer counts this attempt', retryable: false } });
  if (delivery.kind === 'dropped') return send(res, 502, { ...answer, error: { code: 'orchestrator_unreachable', message: delivery.reason, retryable: true } });
  return send(res, 200, answer);
}

function problem(code: string, message: string) {
  return { error: { code, message } };
}

/** A refused envelope, as the orchestrator words them: the message names every field at fault. */
function invalid(code: string, fields: FieldProblem[]) {
  return { error: { code, message: `malformed job envelope: ${describeProblems(fields)}`, fields } };
}

function send(res: http.ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

type JsonBody = { ok: true; value: unknown } | { ok: false; status: number; field: string; message: string };

async function readJson(req: http.IncomingMessage): Promise<JsonBody> {
  const tooLarge = { ok: false, status: 413, field: '(body)', message: `the body is over ${MAX_BODY_BYTES} bytes` } as const;
  // Refused unread: once the answer is sent, Node reads and drops the body and the connection lives on.
  if (Number(req.headers['content-length']) > MAX_BODY_BYTES) return tooLarge;
  const chunks: Buffer[] = [];
  let size = 0;
  // Read to the end even past the limit: leaving early reset the connection under a client still
  // sending, which then never saw the 413 (or, kept alive, sent its next request into the rest).
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size <= MAX_BODY_BYTES) chunks.push(chunk);
  }
  if (size > MAX_BODY_BYTES) return tooLarge;
  if (!/^application\/json\s*(;|$)/i.test(req.headers['content-type'] ?? '')) {
    return { ok: false, status: 415, field: 'content-type', message: 'content-type must be application/json' };
  }
  try {
    return { ok: true, value: JSON.parse(Buffer.concat(chunks).toString('utf8')) };
  } catch (error) {
    return { ok: false, status: 400, field: '(body)', message: `body is not valid JSON: ${errorMessage(error)}` };
  }
}
