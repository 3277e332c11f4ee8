import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { storagePrefixOf } from '@avatar-fleet/contracts';
import { useOrchestrator } from '@avatar-fleet/orchestrator/dist/test/helpers/orchestrator-suite';
import { API_KEY_OWNER, INTERNAL_KEY } from '@avatar-fleet/orchestrator/dist/test/helpers/orchestrator-process';
import { eventually, lane } from '@avatar-fleet/orchestrator/dist/test/helpers/fixtures';
import { writeDevModelSet } from '../src/inference/dev-models';
import { probe } from '../src/media/ffmpeg';
import { startCpuHogs } from './helpers/cpu-hogs';
import { FAST_FLEET } from './helpers/fleet-fixture';

const MAIN = path.resolve(__dirname, '../src/main.js');
const SAMPLES = path.resolve(__dirname, '../../../samples');

// Under two busy loops, as on a user's loaded machine: the worker must not depend on getting a core at once.
describe('the production worker (main.js, MuseTalk pipelines on the dev model set) as a real process, under CPU load', () => {
  const suite = useOrchestrator(FAST_FLEET);
  const root = mkdtempSync(path.join(os.tmpdir(), 'prod-worker-'));
  const storageDir = path.join(root, 'storage');
  // The product's uploads go under its owner's namespace, where its jobs read them.
  const uploads = path.join(storageDir, storagePrefixOf(API_KEY_OWNER), 'uploads');
  const gpuClass = lane();
  let output = '';
  let worker: ReturnType<typeof spawn> | undefined;
  let hogs: ReturnType<typeof startCpuHogs> | undefined;

  before(async () => {
    hogs = startCpuHogs();
    await writeDevModelSet(path.join(root, 'models', 'musetalk'));
    mkdirSync(uploads, { recursive: true });
    copyFileSync(path.join(SAMPLES, 'face.jpg'), path.join(uploads, 'face.jpg'));
    copyFileSync(path.join(SAMPLES, 'speech.m4a'), path.join(uploads, 'speech.m4a'));
    writeFileSync(path.join(uploads, 'broken.m4a'), 'not audio');
    worker = spawn(process.execPath, [MAIN], {
      env: {
        PATH: process.env.PATH ?? '', WORKER_MODE: 'buffer', ORCHESTRATOR_BASE_URL: suite.orch.url, INTERNAL_API_KEY: INTERNAL_KEY,
        GPU_CLASS: gpuClass, GPU_VRAM_GB: '8', STORAGE_DRIVER: 'local', LOCAL_STORAGE_DIR: storageDir, MODEL_DIR: path.join(root, 'models'),
        EXECUTION_PROVIDER: 'cpu', WORKER_PORT: '0', WORKER_PROVIDER: 'local',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    worker.stdout!.on('data', (d: Buffer) => (output += d));
    worker.stderr!.on('data', (d: Buffer) => (output += d));
    await eventually(async () => (/ INFO  ready /.test(output) ? true : undefined), 180_000);
  });
  after(async () => {
    worker?.kill('SIGKILL');
    await hogs?.stop();
  });

  const run = async (kind: 'avatar.prepare' | 'lipsync', input: Record<string, unknown>) => {
    const { id } = await suite.fleet.createJob({ kind, input, requirements: { gpuClass } } as never);
    return eventually(async () => {
      const job = await suite.fleet.getJob(id, { waitMs: 5_000 });
      return ['succeeded', 'failed', 'cancelled'].includes(job.state) ? job : undefined;
    }, 300_000); // a hang guard only: a loaded 2-core machine takes its time
  };

  test('bad jobs fail with a clear code and the worker goes on to finish the good ones', async () => {
    const unknown = await run('lipsync', { avatarId: 'nobody', audio: 'uploads/speech.m4a' });
    assert.equal(unknown.state, 'failed');
    assert.equal(unknown.error?.code, 'avatar_not_found', JSON.stringify(unknown.error));
    assert.equal(unknown.attempt, 1, 'not retried: another attempt would fail the same way');

    const prepared = await run('avatar.prepare', { source: 'uploads/face.jpg', avatarId: 'astro' });
    assert.equal(prepared.state, 'succeeded', JSON.stringify(prepared.error));

    const broken = await run('lipsync', { avatarId: 'astro', audio: 'uploads/broken.m4a' });
    assert.equal(broken.state, 'failed');
    assert.equal(broken.error?.code, 'media_unreadable', JSON.stringify(broken.error));
    assert.match(broken.error!.message, /Invalid data found when processing input \(exit code 1\)$/, 'ffmpeg\'s own reason');
    // The worker's own log says why, not just status=failed (written once the orchestrator's answer is in).
    const said = new RegExp(`final status accepted job=${broken.id} attempt=1 status=failed code=media_unreadable error="audio decoding failed: [^"]*Invalid data`);
    await eventually(async () => said.test(output) || undefined, 60_000);

    const done = await run('lipsync', { avatarId: 'astro', audio: 'uploads/speech.m4a' });
    assert.equal(done.state, 'succeeded', JSON.stringify(done.error));
    const info = await probe(path.join(storageDir, storagePrefixOf(done.owner), String(done.result!.videoKey)));
    assert.ok(Math.abs(info.durationSec - 6.57) < 0.1, `the mp4 lasts as long as the speech (${info.durationSec} s)`);
    assert.equal(worker!.exitCode, null, 'the worker is still running');
    assert.match(output, /musetalk models warmed/);
    assert.match(output, /video encoder chosen codec=libx264/, 'no NVENC here, so libx264');
  });

  test('VIDEO_ENCODER=h264_nvenc where NVENC cannot encode refuses to start, saying why', async () => {
    const strict = spawn(process.execPath, [MAIN], {
      env: {
        PATH: process.env.PATH ?? '', WORKER_MODE: 'buffer', ORCHESTRATOR_BASE_URL: suite.orch.url, INTERNAL_API_KEY: INTERNAL_KEY,
        GPU_VRAM_GB: '8', STORAGE_DRIVER: 'local', LOCAL_STORAGE_DIR: storageDir, MODEL_DIR: path.join(root, 'models'),
        EXECUTION_PROVIDER: 'cpu', WORKER_PORT: '0', VIDEO_ENCODER: 'h264_nvenc',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    strict.stdout!.on('data', (d: Buffer) => (out += d));
    strict.stderr!.on('data', (d: Buffer) => (out += d));
    const code = await new Promise<number | null>((resolve) => strict.on('exit', resolve));
    assert.equal(code, 3);
    assert.match(out, /start-up failed .*VIDEO_ENCODER=h264_nvenc but a test encode with it failed/);
  });
});
