import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import type { ErrorBody, FleetApiError } from '@avatar-fleet/contracts';
import { startOrchestratorProcess, API_KEY, INTERNAL_KEY, OPERATOR_KEY, type OrchestratorProcess } from './helpers/orchestrator-process';
import { lane, lipsyncJob, registerWorker, workerRegistration } from './helpers/fixtures';
import { sendRaw } from './helpers/fuzz-runner';
import { useOrchestrator } from './helpers/orchestrator-suite';
import { createTestDatabase } from './helpers/test-database';

function nested(depth: number): unknown {
  let value: unknown = 1;
  for (let i = 0; i < depth; i++) value = { a: value };
  return value;
}

/** A list cursor in the form the orchestrator issues them, with parts of our choosing. */
function cursor(createdUs: string, id: string): string {
  return Buffer.from(`${createdUs}.${id}`).toString('base64url');
}

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
    // Both passed the old shape check and reached PostgreSQL (500): not a UUID, and past bigint.
    { name: 'cursor id of 36 dashes', method: 'GET', path: `/v1/jobs?cursor=${cursor('1', '-'.repeat(36))}`, field: 'cursor' },
    { name: 'cursor with a 20-digit time', method: 'GET', path: `/v1/jobs?cursor=${cursor('9'.repeat(20), randomUUID())}`, field: 'cursor' },
    // class-transformer took a `constructor` key for the object's class (500) and dropped `toString` without a word.
    { name: 'constructor key inside input', path: '/v1/jobs', body: { kind: 'avatar.prepare', input: JSON.parse('{"source":"a.mp4","constructor":{"name":"x"}}') }, field: 'input.constructor' },
    { name: 'toString key at the top', path: '/v1/jobs', body: JSON.parse('{"kind":"lipsync","input":{"avatarId":"a","audio":"a.wav"},"toString":1}'), field: 'toString' },
    { name: 'requirements is an array', path: '/v1/jobs', body: { kind: 'lipsync', input: { avatarId: 'a', audio: 'a.wav' }, requirements: [] }, field: 'requirements' },
    // PostgreSQL stores neither NUL nor a lone surrogate: they were 500s from the INSERT.
    { name: 'NUL in a stored string', path: '/v1/jobs', body: { kind: 'lipsync', input: { avatarId: 'a', audio: 'a.wav' }, requirements: { gpuClass: 'a\u0000b' } }, field: 'requirements.gpuClass' },
    { name: 'body is JSON null', path: '/v1/jobs', raw: 'null', field: '(body)' },
  ];
  const operator: Case[] = [
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
    { name: 'register with a constructor key', path: '/internal/buffer/workers/register', body: JSON.parse('{"provider":"vast","mode":"buffer","version":"1","kinds":["lipsync"],"constructor":{"x":1}}'), field: 'constructor' },
    { name: 'register with a lone surrogate', path: '/internal/buffer/workers/register', body: { provider: 'vast', mode: 'buffer', version: '\ud800', kinds: ['lipsync'] }, field: 'version' },
    // Integers past what the columns hold were 500s from PostgreSQL (`attempt` is an integer, `sequence` a bigint).
    { name: 'lease attempt past int32', path: () => `/internal/buffer/workers/${workerId}/heartbeat`, body: { activity: 'busy', leases: [{ jobId, attempt: 2 ** 31, leaseToken: randomUUID() }] }, field: 'leases.0.attempt' },
    { name: 'status attempt past int32', path: () => `/internal/buffer/jobs/${jobId}/status`, body: { ...fence, attempt: 2 ** 32, status: 'running' }, field: 'attempt' },
    { name: 'progress sequence 1e21', path: () => `/internal/jobs/${jobId}/progress`, body: { ...fence, stage: 'unet', fraction: 0.5, sequence: 1e21 }, field: 'sequence' },
    { name: 'lease that is an array', path: () => `/internal/buffer/workers/${workerId}/heartbeat`, body: { activity: 'busy', leases: [[]] }, field: 'leases' },
    { name: 'failed with error as an array', path: () => `/internal/buffer/jobs/${jobId}/status`, body: { ...fence, status: 'failed', error: [] }, field: 'error' },
    { name: 'claimNext as an array', path: () => `/internal/buffer/jobs/${jobId}/status`, body: { ...fence, status: 'completed', result: {}, claimNext: [] }, field: 'claimNext' },
    { name: 'NUL in an error message', path: () => `/internal/buffer/jobs/${jobId}/status`, body: { ...fence, status: 'failed', error: { code: 'x', message: 'a\u0000', retryable: false } }, field: 'error.message' },
    // 40 levels deep overflowed class-transformer's stack (500); the answer names the path where depth 32 is passed.
    { name: 'result nested too deep', path: () => `/internal/buffer/jobs/${jobId}/status`, body: { ...fence, status: 'completed', result: nested(40) }, field: ['result', ...Array(31).fill('a')].join('.') },
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

  for (const [group, cases, key] of [['product', product, API_KEY], ['operator', operator, OPERATOR_KEY], ['internal', internal, INTERNAL_KEY]] as const) {
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

  test('missing and wrong keys get 401, keys of another role 403, on every route, before any validation', async () => {
    // A body that is not JSON at all is refused while parsing, which comes before authentication.
    const all = [...product, ...operator, ...internal].filter((c) => c.raw === undefined);
    for (const c of all) {
      for (const key of [null, 'wrong-key-0123456789abcdef']) {
        const res = await send(c, key);
        assert.equal(res.status, 401, `${c.name} with ${key === null ? 'no key' : 'a wrong key'}`);
        assert.equal(res.body?.error?.code, 'unauthorized');
        assert.match(res.body.error.message, /Authorization: Bearer/, 'the 401 names the header to send');
      }
      const path = typeof c.path === 'function' ? c.path() : c.path;
      const swapped = path.startsWith('/internal') ? API_KEY : path.startsWith('/v1/workers') ? API_KEY : INTERNAL_KEY;
      const res = await send(c, swapped);
      assert.equal(res.status, 403, `${c.name} with a key of another role`);
      assert.equal(res.body?.error?.code, 'forbidden');
      assert.match(res.body.error.message, /this route needs .*(API_KEYS|OPERATOR_KEYS|INTERNAL_API_KEY)/, 'the 403 names the role to send');
    }
  });

  test('a webhookUrl reaching a private, loopback or link-local address, or naming a local host, is a 400 saying why', async () => {
    // WHATWG URL parsing, which a sender uses, turns 0x7f000001 into 127.0.0.1 and writes [::ffff:169.254.169.254] as [::ffff:a9fe:a9fe].
    const refused: [url: string, why: RegExp][] = [
      ['http://127.0.0.1:8080/hook', /reaches 127\.0\.0\.1, a private, loopback or link-local address/],
      ['http://0x7f000001/hook', /reaches 127\.0\.0\.1,/],
      ['http://[::1]/hook', /reaches ::1,/],
      ['http://[::ffff:169.254.169.254]/latest/meta-data/', /reaches ::ffff:a9fe:a9fe,/],
      ['http://169.254.169.254/latest/meta-data/', /reaches 169\.254\.169\.254,/],
      ['https://10.20.30.40/hook', /reaches 10\.20\.30\.40,/],
      ['https://[fd00:ec2::254]/hook', /reaches fd00:ec2::254,/],
      ['http://localhost:3000/hook', /names localhost, a local host name/],
      ['http://hooks.localhost/hook', /names hooks\.localhost, a local host name/],
      ['http://printer.local/hook', /names printer\.local, a local host name/],
      ['http://metadata.google.internal/computeMetadata/v1/', /names metadata\.google\.internal, a local host name/],
      // Refused as URLs already (validator's isURL), before any address is looked at: still a 400 naming webhookUrl.
      ['http://2130706433/hook', /webhookUrl must be a URL/],
      ['http://0177.0.0.1/hook', /webhookUrl must be a URL/],
    ];
    for (const [webhookUrl, why] of refused) {
      const res = await send({ name: webhookUrl, path: '/v1/jobs', body: { ...lipsyncJob(), webhookUrl }, field: 'webhookUrl' }, API_KEY);
      assert.equal(res.status, 400, webhookUrl);
      assert.deepEqual(res.body?.error?.fields?.map((f) => f.field), ['webhookUrl'], webhookUrl);
      assert.match(res.body!.error!.message, why, webhookUrl);
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

describe('webhookUrl with WEBHOOK_ALLOW', () => {
  const suite = useOrchestrator({ WEBHOOK_ALLOW: '127.0.0.0/8, ::1, 10.1.2.0/24' });

  test('public names and the allowed addresses are accepted; other private ones are still refused, naming the setting', async () => {
    const accepted = ['https://hooks.example/fleet', 'http://127.0.0.1:9000/hook', 'http://0x7f000001:9000/hook', 'http://[::1]:9000/hook',
      'http://10.1.2.3/hook', 'http://localhost:9000/hook'];
    for (const webhookUrl of accepted) {
      const job = await suite.fleet.createJob(lipsyncJob({ webhookUrl, requirements: { gpuClass: lane() } }));
      assert.equal(job.webhookUrl, webhookUrl, 'stored as given');
    }
    for (const [webhookUrl, why] of [
      ['http://10.9.9.9/hook', /reaches 10\.9\.9\.9, .*\(allow it with WEBHOOK_ALLOW\)/],
      ['http://169.254.169.254/latest/meta-data/', /reaches 169\.254\.169\.254,/],
      // A local name is resolved when some private addresses are allowed; this one has no address here that is.
      ['http://metadata.google.internal/computeMetadata/v1/', /names metadata\.google\.internal, a local host name that/],
    ] as const) {
      await assert.rejects(suite.fleet.createJob(lipsyncJob({ webhookUrl })), (e: FleetApiError) =>
        e.status === 400 && e.fields.map((f) => f.field).join() === 'webhookUrl' && why.test(e.message), webhookUrl);
    }
  });
});

describe('refusals made before validation answer with an ErrorBody too', () => {
  const suite = useOrchestrator({ BODY_LIMIT_BYTES: '65536' });
  const headers = (type = 'application/json') => ({ authorization: `Bearer ${API_KEY}`, 'content-type': type });
  const errorOf = async (res: Response) => ((await res.json()) as ErrorBody).error;
  const rawAnswer = async (bytes: string | Buffer) => {
    const answer = await sendRaw(new URL(suite.orch.url), Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes, 'latin1'));
    assert.ok(!('error' in answer), `an answer came: ${'error' in answer ? answer.error : ''}`);
    return { status: answer.status, error: (JSON.parse(answer.body.toString('utf8')) as ErrorBody).error };
  };

  test('a body that is not JSON gets 415 naming Content-Type (a form was parsed as one, text/plain reached validation)', async () => {
    for (const type of ['application/x-www-form-urlencoded', 'text/plain', 'application/octet-stream']) {
      const res = await fetch(`${suite.orch.url}/v1/jobs`, { method: 'POST', headers: headers(type), body: 'kind=lipsync' });
      assert.equal(res.status, 415, type);
      const error = await errorOf(res);
      assert.deepEqual(error.fields?.map((f) => f.field), ['content-type'], type);
      assert.match(error.message, /content-type/i);
    }
  });

  test('a path that is not a valid URL, or whose id is too long, is a 4xx naming the path', async () => {
    let res = await fetch(`${suite.orch.url}/v1/jobs/%zz/cancel`, { method: 'POST', headers: headers(), body: '{}' });
    assert.equal(res.status, 400);
    assert.deepEqual((await errorOf(res)).fields?.map((f) => f.field), ['(path)']);
    res = await fetch(`${suite.orch.url}/v1/workers/${'w'.repeat(300)}/command`, { method: 'POST', headers: headers(), body: '{"command":"drain"}' });
    assert.equal(res.status, 414);
    assert.deepEqual((await errorOf(res)).fields?.map((f) => f.field), ['(path)']);
  });

  test('a worker id of 128 characters, which registration allows, can heartbeat (fastify refused ids over 100)', async () => {
    const id = await registerWorker(suite.worker, { workerId: 'w'.repeat(128) });
    assert.deepEqual((await suite.worker.heartbeat(id, { activity: 'idle', leases: [] })).lost, []);
  });

  test('malformed HTTP gets an ErrorBody naming the request, never echoing it', async () => {
    const { status, error } = await rawAnswer(`POST /v1/jobs HTTP/1.1\r\nhost: x\r\nauthorization: Bearer ${API_KEY}\r\nx-bad: a\u0000b\r\ncontent-length: 2\r\n\r\n{}`);
    assert.equal(status, 400);
    assert.deepEqual(error.fields?.map((f) => f.field), ['(request)']);
    assert.ok(!error.message.includes(API_KEY));
    assert.equal((await rawAnswer(`GET /health HTTP/1.1\r\nhost: x\r\nx-big: ${'a'.repeat(20_000)}\r\n\r\n`)).status, 431);
  });

  test('an oversized body gets its 413, not a reset connection while the client still writes', async () => {
    // Closing on the client mid-upload lost the answer about one time in three (EPIPE): ten tries catch that.
    const body = JSON.stringify({ kind: 'lipsync', input: { audio: 'x'.repeat(4 * 1024 * 1024) } });
    for (let i = 0; i < 10; i++) {
      const res = await fetch(`${suite.orch.url}/v1/jobs`, { method: 'POST', headers: headers(), body });
      assert.equal(res.status, 413);
      assert.equal((await errorOf(res)).code, 'payload_too_large');
    }
  });

  test('a body with thousands of bad fields names the first 20 and counts the rest', async () => {
    const input = Object.fromEntries(Array.from({ length: 3000 }, (_, i) => [`k${i}`, i]));
    const res = await fetch(`${suite.orch.url}/v1/jobs`, { method: 'POST', headers: headers(), body: JSON.stringify({ kind: 'avatar.prepare', input: { source: 'a.mp4', ...input } }) });
    assert.equal(res.status, 400);
    const error = await errorOf(res);
    assert.equal(error.fields?.length, 20);
    assert.match(error.message, /and 2980 more$/);
  });

  test('a failed status whose claimNext names an unregistered worker is applied and answered without a next job', async () => {
    const gpuClass = lane();
    const { workerId, token } = await suite.worker.register(workerRegistration({ gpuClass }));
    await suite.fleet.createJob(lipsyncJob({ requirements: { gpuClass } }));
    const { job } = (await suite.worker.claim(workerId, 0))!;
    const res = await fetch(`${suite.orch.url}/internal/buffer/jobs/${job.id}/status`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ attempt: job.attempt, leaseToken: job.leaseToken, status: 'failed', error: { code: 'x', message: 'y', retryable: true }, claimNext: { workerId: 'ghost-worker' } }),
    });
    // As with completed: the failure is accepted and no next job comes, since the worker cannot claim.
    assert.equal(res.status, 200);
    assert.equal(((await res.json()) as { next: unknown }).next, null);
  });
});
