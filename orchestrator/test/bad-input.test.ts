import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { startOrchestratorProcess, API_KEY, INTERNAL_KEY, type OrchestratorProcess } from './helpers/orchestrator-process';
import { registerWorker } from './helpers/fixtures';
import { createTestDatabase } from './helpers/test-database';

interface Case {
  name: string;
  method?: string;
  path: string | (() => string);
  body?: unknown;
  raw?: string;
  /** The field (or body) the 400 must name. */
  field: string;
}

describe('bad input gets a 4xx naming the problem; bad keys get 401', () => {
  let db: Awaited<ReturnType<typeof createTestDatabase>>;
  let orch: OrchestratorProcess;
  let workerId: string;
  const jobId = randomUUID();

  before(async () => {
    db = await createTestDatabase();
    orch = await startOrchestratorProcess(db.url, { BODY_LIMIT_BYTES: '65536' });
    workerId = await registerWorker(orch.worker());
  });
  after(async () => {
    await orch.stop();
    await db.drop();
  });

  const fence = { attempt: 1, leaseToken: randomUUID() };
  const product: Case[] = [
    { name: 'unknown kind', path: '/v1/jobs', body: { kind: 'render', input: {} }, field: 'kind' },
    { name: 'missing input', path: '/v1/jobs', body: { kind: 'lipsync' }, field: 'input' },
    { name: 'input is an array', path: '/v1/jobs', body: { kind: 'lipsync', input: [] }, field: 'input' },
    { name: 'input misses audio', path: '/v1/jobs', body: { kind: 'lipsync', input: { avatarId: 'a' } }, field: 'input.audio' },
    { name: 'both avatar and video', path: '/v1/jobs', body: { kind: 'lipsync', input: { avatarId: 'a', sourceVideo: 'v.mp4', audio: 'a.wav' } }, field: 'input.sourceVideo' },
    { name: 'neither avatar nor video', path: '/v1/jobs', body: { kind: 'lipsync', input: { audio: 'a.wav' } }, field: 'input.avatarId' },
    { name: 'path traversal in a key', path: '/v1/jobs', body: { kind: 'avatar.prepare', input: { source: '../etc/passwd' } }, field: 'input.source' },
    { name: 'unknown input field', path: '/v1/jobs', body: { kind: 'avatar.prepare', input: { source: 'a.mp4', colour: 'red' } }, field: 'input.colour' },
    { name: 'nested option out of range', path: '/v1/jobs', body: { kind: 'lipsync', input: { avatarId: 'a', audio: 'a.wav', options: { crf: 99 } } }, field: 'input.options.crf' },
    { name: 'priority is a string', path: '/v1/jobs', body: { kind: 'lipsync', input: {}, priority: 'high' }, field: 'priority' },
    { name: 'webhook is not a URL', path: '/v1/jobs', body: { kind: 'lipsync', input: {}, webhookUrl: 'ftp:/x' }, field: 'webhookUrl' },
    { name: 'maxAttempts too high', path: '/v1/jobs', body: { kind: 'lipsync', input: {}, maxAttempts: 1000 }, field: 'maxAttempts' },
    { name: 'requirements.minVramGb negative', path: '/v1/jobs', body: { kind: 'lipsync', input: {}, requirements: { minVramGb: -1 } }, field: 'requirements.minVramGb' },
    { name: 'unknown top-level field', path: '/v1/jobs', body: { kind: 'lipsync', input: {}, owner: 'me' }, field: 'owner' },
    { name: 'body is a JSON array', path: '/v1/jobs', body: [1, 2], field: '(body)' },
    { name: 'body is not JSON', path: '/v1/jobs', raw: '{"kind": ', field: '(body)' },
    { name: '__proto__ key', path: '/v1/jobs', raw: '{"kind":"lipsync","input":{},"__proto__":{"admin":true}}', field: '(body)' },
    { name: 'oversized body', path: '/v1/jobs', raw: JSON.stringify({ kind: 'lipsync', input: { audio: 'x'.repeat(70_000) } }), field: '(body)' },
    { name: 'job id is not a UUID', method: 'GET', path: '/v1/jobs/not-a-uuid', field: 'id' },
    { name: 'waitMs too long', method: 'GET', path: () => `/v1/jobs/${jobId}?waitMs=600000`, field: 'waitMs' },
    { name: 'list limit is not a number', method: 'GET', path: '/v1/jobs?limit=many', field: 'limit' },
    { name: 'list state unknown', method: 'GET', path: '/v1/jobs?state=done', field: 'state' },
    { name: 'forged cursor', method: 'GET', path: '/v1/jobs?cursor=bm90LWEtY3Vyc29y', field: 'cursor' },
    { name: 'unknown worker command', path: '/v1/workers/w1/command', body: { command: 'reboot' }, field: 'command' },
  ];
  const internal: Case[] = [
    { name: 'register without kinds', path: '/internal/buffer/workers/register', body: { provider: 'vast', mode: 'buffer', version: '1' }, field: 'kinds' },
    { name: 'register with an unknown kind', path: '/internal/buffer/workers/register', body: { provider: 'vast', mode: 'buffer', version: '1', kinds: ['mine'] }, field: 'kinds' },
    { name: 'register with a bad provider', path: '/internal/buffer/workers/register', body: { provider: 'aws', mode: 'buffer', version: '1', kinds: ['lipsync'] }, field: 'provider' },
    { name: 'register with a bad worker id', path: '/internal/buffer/workers/register', body: { workerId: 'a b/c', provider: 'vast', mode: 'buffer', version: '1', kinds: ['lipsync'] }, field: 'workerId' },
    { name: 'register with NaN VRAM', path: '/internal/buffer/workers/register', body: { provider: 'vast', mode: 'buffer', version: '1', kinds: ['lipsync'], vramGb: 'lots' }, field: 'vramGb' },
    { name: 'heartbeat with a bad lease', path: () => `/internal/buffer/workers/${workerId}/heartbeat`, body: { activity: 'busy', leases: [{ jobId: 'x', attempt: 0, leaseToken: 'y' }] }, field: 'leases.0.jobId' },
    { name: 'heartbeat with bad telemetry', path: () => `/internal/buffer/workers/${workerId}/heartbeat`, body: { activity: 'busy', leases: [], telemetry: { gpuUtilPct: 400 } }, field: 'telemetry.gpuUtilPct' },
    { name: 'heartbeat with too many leases', path: () => `/internal/buffer/workers/${workerId}/heartbeat`, body: { activity: 'busy', leases: Array.from({ length: 65 }, () => ({ jobId: randomUUID(), attempt: 1, leaseToken: randomUUID() })) }, field: 'leases' },
    { name: 'claim without worker id', path: '/internal/buffer/jobs/claim', body: { waitMs: 10 }, field: 'workerId' },
    { name: 'claim waiting too long', path: '/internal/buffer/jobs/claim', body: { workerId: 'w', waitMs: 60_000 }, field: 'waitMs' },
    { name: 'status without lease token', path: () => `/internal/buffer/jobs/${jobId}/status`, body: { attempt: 1, status: 'running' }, field: 'leaseToken' },
    { name: 'completed without result', path: () => `/internal/buffer/jobs/${jobId}/status`, body: { ...fence, status: 'completed' }, field: 'result' },
    { name: 'failed without error', path: () => `/internal/buffer/jobs/${jobId}/status`, body: { ...fence, status: 'failed' }, field: 'error' },
    { name: 'failed with a bad error code', path: () => `/internal/buffer/jobs/${jobId}/status`, body: { ...fence, status: 'failed', error: { code: 'Bad Code!', message: 'x', retryable: true } }, field: 'error.code' },
    { name: 'unknown status', path: () => `/internal/buffer/jobs/${jobId}/status`, body: { ...fence, status: 'done' }, field: 'status' },
    { name: 'status on a non-UUID job', path: '/internal/buffer/jobs/123/status', body: { ...fence, status: 'running' }, field: 'id' },
    { name: 'progress fraction above 1', path: () => `/internal/jobs/${jobId}/progress`, body: { ...fence, stage: 'unet', fraction: 1.5, sequence: 1 }, field: 'fraction' },
    { name: 'progress sequence negative', path: () => `/internal/jobs/${jobId}/progress`, body: { ...fence, stage: 'unet', fraction: 0.5, sequence: -1 }, field: 'sequence' },
    { name: 'deregister with a huge reason', path: () => `/internal/buffer/workers/${workerId}/deregister`, body: { reason: 'x'.repeat(10_000) }, field: 'reason' },
  ];

  async function send(c: Case, key: string | null) {
    const path = typeof c.path === 'function' ? c.path() : c.path;
    const method = c.method ?? 'POST';
    const headers: Record<string, string> = {};
    if (key) headers.authorization = `Bearer ${key}`;
    let body: string | undefined;
    if (method !== 'GET') {
      headers['content-type'] = 'application/json';
      body = c.raw ?? JSON.stringify(c.body ?? {});
    }
    const res = await fetch(`${orch.url}${path}`, { method, headers, body });
    return { status: res.status, body: (await res.json().catch(() => null)) as { error?: { code: string; message: string; fields?: { field: string }[] } } | null };
  }

  for (const [group, cases, key] of [['product', product, API_KEY], ['internal', internal, INTERNAL_KEY]] as const) {
    for (const c of cases) {
      test(`${group}: ${c.name} -> 4xx naming ${c.field}`, async () => {
        const res = await send(c, key);
        assert.ok(res.status >= 400 && res.status < 500, `status ${res.status}`);
        const error = res.body?.error;
        assert.ok(error, 'the body is an ErrorBody');
        const named = (error.fields ?? []).map((f) => f.field);
        assert.ok(named.includes(c.field), `fields ${JSON.stringify(named)} name ${c.field}; message: ${error.message}`);
        assert.ok(error.message.length > 10);
      });
    }
  }

  test('missing, wrong and swapped keys get 401 on every route, before any validation', async () => {
    // A body that is not JSON at all is refused while parsing, which comes before authentication.
    const all = [...product, ...internal].filter((c) => c.raw === undefined);
    for (const c of all) {
      const isInternal = (typeof c.path === 'function' ? c.path() : c.path).startsWith('/internal');
      for (const key of [null, 'wrong-key-0123456789abcdef', isInternal ? API_KEY : INTERNAL_KEY]) {
        const res = await send(c, key);
        assert.equal(res.status, 401, `${c.name} with ${key === null ? 'no key' : 'a wrong key'}`);
        assert.equal(res.body?.error?.code, 'unauthorized');
      }
    }
  });

  test('rejected requests changed nothing, and no key appears in any log line', async () => {
    const { rows } = await db.pool.query(`SELECT (SELECT count(*) FROM jobs)::int AS jobs, (SELECT count(*) FROM workers)::int AS workers`);
    assert.deepEqual(rows[0], { jobs: 0, workers: 1 });
    const log = orch.output();
    for (const secret of [API_KEY, INTERNAL_KEY]) assert.ok(!log.includes(secret), 'a key leaked into the log');
    assert.doesNotMatch(log, /\b500\b|internal error/i);
  });
});
