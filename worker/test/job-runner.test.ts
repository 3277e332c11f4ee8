import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, test } from 'node:test';
import { AddressPolicy, WorkerClient } from '@avatar-fleet/contracts';
import { PipelineError, type HandlerMap } from '../src/pipelines/pipeline';
import { RunningJob, runJob } from '../src/runtime/job-runner';
import { createLogger } from '../src/runtime/logger';
import { sleep } from '../src/runtime/retry';
import { createStorage } from '../src/storage/create-storage';

// Progress goes nowhere (nothing listens on port 9): progress is advisory, so jobs must not care.
const client = new WorkerClient({ baseUrl: 'http://127.0.0.1:9', apiKey: 'k', timeoutMs: 200 });
const storageRoot = mkdtempSync(path.join(os.tmpdir(), 'runner-storage-'));
const scratchRoot = mkdtempSync(path.join(os.tmpdir(), 'runner-scratch-'));
const deps = (handlers: HandlerMap) => ({ handlers, client, storage: createStorage({ driver: 'local', local: { root: storageRoot } }), scratchRoot, mediaAccess: new AddressPolicy(), log: createLogger('error') });
const job = (input: Record<string, unknown> = { avatarId: 'a-1', audio: 'https://media.example/a.wav' }, timeoutSec = 60) =>
  new RunningJob({ id: '00000000-0000-4000-8000-00000000000' + Math.floor(Math.random() * 10), kind: 'lipsync', input, attempt: 3, leaseToken: '00000000-0000-4000-8000-0000000000aa', timeoutSec });

describe('job runner', () => {
  test('a result comes back, outputs land under the attempt\'s own key, and the scratch folder is removed', async () => {
    let scratch = '';
    const running = job();
    const outcome = await runJob(running, deps({
      async lipsync(input, ctx) {
        scratch = ctx.scratchDir;
        writeFileSync(path.join(ctx.scratchDir, 'v.mp4'), `video for ${input.audio}`);
        ctx.progress('encode', 0.5);
        const stored = await ctx.putOutput('v.mp4', path.join(ctx.scratchDir, 'v.mp4'));
        return { videoKey: stored.key, durationSec: 1, frameCount: 25 };
      },
    }));
    assert.deepEqual(outcome, { kind: 'completed', result: { videoKey: `jobs/${running.job.id}/attempt-3/v.mp4`, durationSec: 1, frameCount: 25 } });
    assert.equal(readFileSync(path.join(storageRoot, `jobs/${running.job.id}/attempt-3/v.mp4`), 'utf8'), 'video for https://media.example/a.wav');
    assert.equal(existsSync(scratch), false);
  });

  test('a job with a storage prefix reads and writes only under it, and reports keys relative to it', async () => {
    mkdirSync(path.join(storageRoot, 'tenants/shop/uploads'), { recursive: true });
    writeFileSync(path.join(storageRoot, 'tenants/shop/uploads/a.wav'), 'shop\'s audio');
    writeFileSync(path.join(storageRoot, 'uploads-a.wav'), 'a global object the job must not see');
    const running = new RunningJob({ ...job({ avatarId: 'a-1', audio: 'uploads/a.wav' }).job, id: randomUUID(), storagePrefix: 'tenants/shop/' });
    const outcome = await runJob(running, deps({
      async lipsync(input, ctx) {
        const local = path.join(ctx.scratchDir, 'in.wav');
        await ctx.storage.getFile(input.audio, local);
        await assert.rejects(ctx.storage.getFile('uploads-a.wav', local), /no such object/, 'the bucket\'s own keys are out of reach');
        writeFileSync(path.join(ctx.scratchDir, 'v.mp4'), `video for ${readFileSync(local, 'utf8')}`);
        const stored = await ctx.putOutput('v.mp4', path.join(ctx.scratchDir, 'v.mp4'));
        assert.deepEqual((await ctx.storage.list('jobs/')).map((o) => o.key), [stored.key], 'listed keys are relative too');
        return { videoKey: stored.key, durationSec: 1, frameCount: 25 };
      },
    }));
    const key = `jobs/${running.job.id}/attempt-3/v.mp4`;
    assert.deepEqual(outcome, { kind: 'completed', result: { videoKey: key, durationSec: 1, frameCount: 25 } });
    assert.equal(readFileSync(path.join(storageRoot, 'tenants/shop', key), 'utf8'), 'video for shop\'s audio');
    assert.equal(existsSync(path.join(storageRoot, key)), false, 'nothing was written outside the prefix');
  });

  test('a storage prefix that is not tenants/<owner>/ fails the job before its handler runs', async () => {
    let ran = false;
    for (const storagePrefix of ['tenants/../', 'tenants/a/b/', '', 'tenants/.hidden/', '/tenants/a/']) {
      const outcome = await runJob(new RunningJob({ ...job().job, storagePrefix }), deps({ lipsync: async () => { ran = true; return { videoKey: '', durationSec: 0, frameCount: 0 }; } }));
      assert.equal(outcome.kind === 'failed' && `${outcome.error.code} ${outcome.error.retryable}`, 'invalid_storage_prefix false', storagePrefix);
    }
    assert.equal(ran, false);
  });

  test('the execution time-out aborts the handler and reports a retryable timeout', async () => {
    const outcome = await runJob(job(undefined, 1), deps({
      async lipsync(_input, ctx) {
        await sleep(30_000, ctx.signal);
        ctx.signal.throwIfAborted();
        throw new Error('unreachable');
      },
    }));
    assert.deepEqual(outcome, { kind: 'failed', error: { code: 'timeout', message: 'the attempt ran past its time-out', retryable: true } });
  });

  test('handler failures: PipelineError keeps its code and retry flag; anything else is a retryable pipeline_error', async () => {
    const own = await runJob(job(), deps({ lipsync: async () => { throw new PipelineError('no_face', 'no face in the source video', false); } }));
    assert.deepEqual(own, { kind: 'failed', error: { code: 'no_face', message: 'no face in the source video', retryable: false } });
    const crash = await runJob(job(), deps({ lipsync: async () => { throw new TypeError('x is undefined'); } }));
    assert.deepEqual(crash, { kind: 'failed', error: { code: 'pipeline_error', message: 'x is undefined', retryable: true } });
  });

  test('input is validated again on the worker; a kind without a handler is refused', async () => {
    let ran = false;
    const bad = await runJob(job({ audio: 7 }), deps({ lipsync: async () => { ran = true; return { videoKey: '', durationSec: 0, frameCount: 0 }; } }));
    assert.equal(ran, false);
    assert.equal(bad.kind, 'failed');
    assert.equal(bad.kind === 'failed' && bad.error.code, 'invalid_input');
    assert.match(bad.kind === 'failed' ? bad.error.message : '', /audio/);
    assert.deepEqual(await runJob(job(), deps({})), { kind: 'failed', error: { code: 'unsupported_kind', message: 'this worker has no pipeline for lipsync', retryable: false } });
  });

  test('an abort from outside (cancel, lost lease, shutdown) ends the job with that reason', async () => {
    const handlers: HandlerMap = { async lipsync(_input, ctx) {
      await sleep(30_000, ctx.signal);
      ctx.signal.throwIfAborted();
      return { videoKey: '', durationSec: 0, frameCount: 0 };
    } };
    for (const [reason, expected] of [
      ['cancelled', { kind: 'failed', error: { code: 'cancelled', message: 'cancelled on request', retryable: false } }],
      ['lease_lost', { kind: 'abandoned', reason: 'lease_lost' }],
      ['shutdown', { kind: 'abandoned', reason: 'shutdown' }],
    ] as const) {
      const running = job();
      setTimeout(() => running.abort(reason), 20);
      assert.deepEqual(await runJob(running, deps(handlers)), expected);
    }
    assert.deepEqual(readdirSync(scratchRoot), [], 'every scratch folder was removed');
  });
});
