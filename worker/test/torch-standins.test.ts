import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { checkModelSet } from '../src/inference/model-check';
import { ModelLoader } from '../src/inference/model-loader';
import { binaries, probe } from '../src/media/ffmpeg';
import { musetalkPipelines } from '../src/pipelines/musetalk-pipelines';
import type { PipelineSet } from '../src/pipelines/pipeline';
import { createLogger } from '../src/runtime/logger';
import { createStorage } from '../src/storage/create-storage';
import { jobContext } from './helpers/job-context';

/**
 * The model set scripts/export/standins.py wrote: tiny networks with MuseTalk's four signatures,
 * exported by the same wrappers and helper as the real weights (scripts/export/musetalk_onnx.py)
 * with Debian's torch 1.13. Committed, so no Python is needed here.
 */
const STANDINS = path.resolve(__dirname, '../../test/fixtures/torch-standins');
const FACE = path.resolve(__dirname, '../../test/fixtures/faces/astronaut.jpg');

describe('the torch-exported stand-in model set (scripts/export)', () => {
  const root = mkdtempSync(path.join(os.tmpdir(), 'standins-'));
  const bucket = path.join(root, 'bucket');
  const storage = createStorage({ driver: 'local', local: { root: bucket } });
  const log = createLogger('error');
  let pipelines: PipelineSet;

  before(async () => {
    pipelines = musetalkPipelines();
    // As a production worker loads a set: real models required, so a dev set would be refused.
    await pipelines.load(new ModelLoader({ modelDir: STANDINS, executionProvider: 'cpu', requireRealModels: true, log }), log);
    mkdirSync(path.join(bucket, 'uploads'), { recursive: true });
    copyFileSync(FACE, path.join(bucket, 'uploads/face.jpg'));
    execFileSync(binaries().ffmpeg, ['-y', '-loglevel', 'error', '-f', 'lavfi', '-i', 'sine=frequency=200:sample_rate=16000:duration=1.5', path.join(bucket, 'uploads/speech.wav')]);
  });
  after(() => rmSync(root, { recursive: true, force: true }));

  test('models:check passes it: every name, dtype, shape and batch of the contract, and a run on zeros', async () => {
    const verdicts = await checkModelSet(path.join(STANDINS, 'musetalk'));
    assert.deepEqual(verdicts.filter((v) => !v.ok), [], JSON.stringify(verdicts, null, 2));
    assert.deepEqual(verdicts.map((v) => v.batch), [4, 4, 4, null, undefined], 'UNet and VAE batch 4, whisper dynamic');
  });

  test('avatar.prepare and lipsync run on it as on a real set', async () => {
    const prepared = await pipelines.handlers['avatar.prepare']!({ source: 'uploads/face.jpg', avatarId: 'astro', fps: 25, bboxShift: 0 }, jobContext('avatar.prepare', storage, root, log).ctx);
    assert.deepEqual(prepared, { avatarId: 'astro', manifestKey: 'avatars/astro/manifest.json', frameCount: 1 });
    const { ctx } = jobContext('lipsync', storage, root, log);
    const result = await pipelines.handlers.lipsync!({ avatarId: 'astro', audio: 'uploads/speech.wav' }, ctx);
    assert.equal(result.frameCount, 37, '1.5 s at 25 fps: floor(37.5)');
    const info = await probe(path.join(bucket, result.videoKey));
    assert.equal(info.video?.codec, 'h264');
    assert.equal(info.audio?.codec, 'aac');
  });
});
