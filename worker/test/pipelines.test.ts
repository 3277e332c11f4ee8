import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { before, describe, test } from 'node:test';
import { AddressPolicy, WorkerClient, type JobKind } from '@avatar-fleet/contracts';
import { writeDevModelSet } from '../src/inference/dev-models';
import { ModelLoader } from '../src/inference/model-loader';
import { binaries, decodeFrames, ffmpegStarts, MediaError, probe } from '../src/media/ffmpeg';
import { PREPROCESSING_VERSION } from '../src/pipelines/avatar-prepare/bundle';
import { musetalkPipelines } from '../src/pipelines/musetalk-pipelines';
import { PipelineError, type PipelineSet } from '../src/pipelines/pipeline';
import { RunningJob, runJob } from '../src/runtime/job-runner';
import { createLogger } from '../src/runtime/logger';
import { createStorage } from '../src/storage/create-storage';
import { eventually } from '@avatar-fleet/orchestrator/dist/test/helpers/fixtures';
import { jobContext } from './helpers/job-context';

const root = mkdtempSync(path.join(os.tmpdir(), 'pipelines-'));
const bucket = path.join(root, 'bucket');
const storage = createStorage({ driver: 'local', local: { root: bucket } });
const log = createLogger('error');
const FACE = path.resolve(__dirname, '../../test/fixtures/faces/astronaut.jpg');
// Progress goes nowhere (nothing listens on port 9): the runner treats progress as advisory.
const NOBODY = new WorkerClient({ baseUrl: 'http://127.0.0.1:9', apiKey: 'k', timeoutMs: 200 });

function ffmpeg(...args: string[]): void {
  execFileSync(binaries().ffmpeg, ['-y', '-loglevel', 'error', ...args]);
}

const context = (kind: JobKind) => jobContext(kind, storage, root, log);

describe('MuseTalk pipelines on the dev model set (real ffmpeg, onnxruntime, BlazeFace)', () => {
  let pipelines: PipelineSet;
  before(async () => {
    const modelDir = path.join(root, 'models');
    await writeDevModelSet(path.join(modelDir, 'musetalk'), { batchSize: 8 });
    pipelines = musetalkPipelines();
    await pipelines.load(new ModelLoader({ modelDir, executionProvider: 'cpu', requireRealModels: false, log }), log);
    mkdirSync(path.join(bucket, 'uploads'), { recursive: true });
    // 1.2 s of the astronaut photo as a 25 fps video, slowly zooming so frames differ.
    ffmpeg('-loop', '1', '-i', FACE, '-t', '1.2', '-r', '25', '-vf', "scale=480:480,zoompan=z='1+0.002*on':d=1:s=480x480:fps=25", '-c:v', 'libx264', '-pix_fmt', 'yuv420p', path.join(bucket, 'uploads/face.mp4'));
    ffmpeg('-f', 'lavfi', '-i', 'sine=frequency=220:sample_rate=44100:duration=2', path.join(bucket, 'uploads/speech.wav'));
    ffmpeg('-f', 'lavfi', '-i', 'testsrc2=size=320x240:rate=25:duration=1', '-c:v', 'libx264', '-pix_fmt', 'yuv420p', path.join(bucket, 'uploads/pattern.mp4'));
  });

  test('avatar.prepare builds a bundle once and reuses it for the same parameters', async () => {
    const first = context('avatar.prepare');
    const result = await pipelines.handlers['avatar.prepare']!({ source: 'uploads/face.mp4', avatarId: 'astro', fps: 25, bboxShift: 0 }, first.ctx);
    assert.deepEqual(result, { avatarId: 'astro', manifestKey: 'avatars/astro/manifest.json', frameCount: 30 });
    assert.deepEqual(readdirSync(path.join(bucket, 'avatars/astro')).sort(), ['frames.mp4', 'latents.f32', 'manifest.json', 'masks.u8']);
    const loop = await probe(path.join(bucket, 'avatars/astro/frames.mp4'));
    assert.ok(Math.abs(loop.durationSec - 58 / 25) < 0.05, `the loop holds 30 + 28 frames (${loop.durationSec} s)`);
    const again = context('avatar.prepare');
    await pipelines.handlers['avatar.prepare']!({ source: 'uploads/face.mp4', avatarId: 'astro', fps: 25, bboxShift: 0 }, again.ctx);
    assert.ok(!again.progress.some(([stage]) => stage === 'detect'), 'reused: nothing was detected again');
  });

  test('a face too small for BlazeFace in the whole wide frame is found in a tile', async () => {
    // The photo at 600 px in a black 1280x720 frame: the face, ~150 px wide, is ~15 px in the
    // letterboxed 128 px view of the whole frame (too small) and ~27 px in a tile's.
    ffmpeg('-i', FACE, '-vf', 'scale=600:600,pad=1280:720:340:60', path.join(bucket, 'uploads/wide.png'));
    const { ctx } = context('avatar.prepare');
    const result = await pipelines.handlers['avatar.prepare']!({ source: 'uploads/wide.png', avatarId: 'wide', fps: 25, bboxShift: 0 }, ctx);
    assert.equal(result.frameCount, 1);
    const manifest = JSON.parse(readFileSync(path.join(bucket, 'avatars/wide/manifest.json'), 'utf8')) as { boxes: number[][] };
    const [x, y, size] = manifest.boxes[0]!;
    assert.ok(x! >= 340 && x! + size! <= 940 && y! >= 60 && y! + size! <= 660, `the crop ${manifest.boxes[0]} lies on the photo`);
    assert.ok(size! > 100 && size! < 400, `a face-sized crop (${size} px)`);
  });

  test('a still-image avatar\'s lipsync runs two ffmpeg processes whatever the length of the speech: audio, and one render', async () => {
    const before = ffmpegStarts();
    const result = await pipelines.handlers.lipsync!({ avatarId: 'wide', audio: 'uploads/speech.wav' }, context('lipsync').ctx);
    const after = ffmpegStarts();
    assert.equal(result.frameCount, 50);
    const started = Object.fromEntries(Object.entries(after).map(([purpose, n]) => [purpose, n - before[purpose as keyof typeof before]]));
    assert.deepEqual(started, { frames: 0, audio: 1, encode: 0, render: 1 });
  });

  test('a bundle made by older preprocessing (no version in its manifest) is rebuilt by the next lipsync, then reused', async () => {
    // The still avatar of the test above, as a bundle from before versions were kept.
    const manifestFile = path.join(bucket, 'avatars/wide/manifest.json');
    const manifest = JSON.parse(readFileSync(manifestFile, 'utf8')) as { params: Record<string, unknown> };
    assert.equal(manifest.params.preprocessing, PREPROCESSING_VERSION);
    delete manifest.params.preprocessing;
    writeFileSync(manifestFile, JSON.stringify(manifest));
    const rebuilt = context('lipsync');
    await pipelines.handlers.lipsync!({ avatarId: 'wide', audio: 'uploads/speech.wav' }, rebuilt.ctx);
    assert.ok(rebuilt.progress.some(([stage]) => stage === 'detect'), 'the bundle was prepared again');
    assert.equal((JSON.parse(readFileSync(manifestFile, 'utf8')) as typeof manifest).params.preprocessing, PREPROCESSING_VERSION);
    const next = context('lipsync');
    await pipelines.handlers.lipsync!({ avatarId: 'wide', audio: 'uploads/speech.wav' }, next.ctx);
    assert.ok(!next.progress.some(([stage]) => stage === 'detect'), 'then reused as it is');
  });

  test('lipsync renders an mp4 as long as the audio, one frame per 40 ms, progress by frames', async () => {
    const { ctx, progress } = context('lipsync');
    const result = await pipelines.handlers.lipsync!({ avatarId: 'astro', audio: 'uploads/speech.wav' }, ctx);
    assert.equal(result.frameCount, 50);
    assert.equal(result.videoKey, `jobs/${ctx.job.id}/attempt-1/lipsync.mp4`);
    const file = path.join(bucket, result.videoKey);
    const info = await probe(file);
    assert.equal(info.video?.codec, 'h264');
    assert.equal(info.audio?.codec, 'aac');
    assert.ok(Math.abs(info.durationSec - 2) <= 0.04 + 0.03, `duration ${info.durationSec} s for 2 s of audio`);
    let frames = 0;
    for await (const _ of decodeFrames(file, { width: 48, height: 48 })) frames++;
    assert.equal(frames, 50);
    assert.deepEqual(progress.filter(([s]) => s === 'render').at(-1), ['render', 1]);
    assert.deepEqual(readdirSync(ctx.scratchDir).filter((f) => f.endsWith('.mp4') && f !== 'lipsync.mp4' && !f.startsWith('astro-')), []);
  });

  test('memory does not grow with the number of frames: 10x the frames adds only the audio samples\' share', async () => {
    ffmpeg('-f', 'lavfi', '-i', 'sine=frequency=180:sample_rate=16000:duration=4', path.join(bucket, 'uploads/short.wav'));
    ffmpeg('-f', 'lavfi', '-i', 'sine=frequency=180:sample_rate=16000:duration=40', path.join(bucket, 'uploads/ten-times.wav'));
    const peak = (audio: string) => {
      const out = execFileSync(process.execPath, [path.resolve(__dirname, 'fixtures/lipsync-rss.js'), root, 'astro', audio], { encoding: 'utf8' });
      return JSON.parse(out.trim().split('\n').at(-1)!) as { frames: number; peakMb: number };
    };
    const short = peak('uploads/short.wav');
    const long = peak('uploads/ten-times.wav');
    assert.deepEqual([short.frames, long.frames], [100, 1000]);
    // Holding the 900 extra 480x480 frames would add ~620 MB. What may grow is the audio samples
    // (64 KB per second); Whisper's features are streamed, two 30 s windows at most
    // (audio-features.test.ts).
    assert.ok(long.peakMb - short.peakMb < 100, `peak RSS ${short.peakMb.toFixed(0)} MB for 100 frames, ${long.peakMb.toFixed(0)} MB for 1000`);
  });

  test('bad input fails with a clear code: no face, unreadable audio, unknown avatar', async () => {
    await assert.rejects(
      pipelines.handlers['avatar.prepare']!({ source: 'uploads/pattern.mp4', avatarId: 'pattern', fps: 25, bboxShift: 0 }, context('avatar.prepare').ctx),
      (e: unknown) => (e as { code?: string }).code === 'no_face' && !(e as { retryable?: boolean }).retryable,
    );
    writeFileSync(path.join(bucket, 'uploads/noise.wav'), 'not audio at all');
    await assert.rejects(pipelines.handlers.lipsync!({ avatarId: 'astro', audio: 'uploads/noise.wav' }, context('lipsync').ctx), (e: unknown) => e instanceof MediaError && e.code === 'media_unreadable');
    await assert.rejects(pipelines.handlers.lipsync!({ avatarId: 'nobody', audio: 'uploads/speech.wav' }, context('lipsync').ctx), (e: unknown) => e instanceof PipelineError && e.code === 'avatar_not_found');
  });

  test('owners\' jobs keep to tenants/<owner>/: inputs, bundles and outputs; two owners\' same avatarId never meet', async () => {
    const run = (owner: string, kind: JobKind, input: Record<string, unknown>) => {
      const job = new RunningJob({ id: randomUUID(), kind, input, attempt: 1, leaseToken: randomUUID(), timeoutSec: 600, storagePrefix: `tenants/${owner}/` });
      return runJob(job, { handlers: pipelines.handlers, storage, client: NOBODY, scratchRoot: root, mediaAccess: new AddressPolicy(), log }).then((outcome) => ({ id: job.job.id, outcome }));
    };
    const failure = ({ outcome }: Awaited<ReturnType<typeof run>>) => (outcome.kind === 'failed' ? outcome.error.code : outcome.kind);
    for (const owner of ['ann', 'bob']) mkdirSync(path.join(bucket, `tenants/${owner}/uploads`), { recursive: true });
    ffmpeg('-i', FACE, '-vf', 'scale=480:480', path.join(bucket, 'tenants/ann/uploads/face.png'));
    for (const owner of ['ann', 'bob']) copyFileSync(path.join(bucket, 'uploads/speech.wav'), path.join(bucket, `tenants/${owner}/uploads/speech.wav`));

    const prepared = await run('ann', 'avatar.prepare', { source: 'uploads/face.png', avatarId: 'shared' });
    assert.deepEqual(prepared.outcome, { kind: 'completed', result: { avatarId: 'shared', manifestKey: 'avatars/shared/manifest.json', frameCount: 1 } });
    assert.deepEqual(readdirSync(path.join(bucket, 'tenants/ann/avatars/shared')).sort(), ['frames.mp4', 'latents.f32', 'manifest.json', 'masks.u8']);
    assert.equal(existsSync(path.join(bucket, 'avatars/shared')), false, 'no bundle in the bucket\'s own avatars/');

    // Bob names the same avatar and Ann's upload: each is looked up in his own namespace, where neither is.
    assert.equal(failure(await run('bob', 'lipsync', { avatarId: 'shared', audio: 'uploads/speech.wav' })), 'avatar_not_found');
    assert.equal(failure(await run('bob', 'avatar.prepare', { source: 'uploads/face.png', avatarId: 'bobs' })), 'media_unreadable');
    // Nor can he climb out: a `..` key is refused as input, and a manifest planted in his namespace that
    // points at Ann's bundle is a broken bundle, not a path to follow.
    assert.equal(failure(await run('bob', 'lipsync', { avatarId: 'shared', audio: '../ann/uploads/speech.wav' })), 'invalid_input');
    const planted = JSON.parse(readFileSync(path.join(bucket, 'tenants/ann/avatars/shared/manifest.json'), 'utf8')) as { avatarId: string; files: Record<string, string> };
    planted.avatarId = 'stolen';
    for (const name of Object.keys(planted.files)) planted.files[name] = `avatars/stolen/../../../ann/${planted.files[name]}`;
    mkdirSync(path.join(bucket, 'tenants/bob/avatars/stolen'), { recursive: true });
    writeFileSync(path.join(bucket, 'tenants/bob/avatars/stolen/manifest.json'), JSON.stringify(planted));
    assert.equal(failure(await run('bob', 'lipsync', { avatarId: 'stolen', audio: 'uploads/speech.wav' })), 'avatar_corrupt');

    const spoken = await run('ann', 'lipsync', { avatarId: 'shared', audio: 'uploads/speech.wav' });
    const videoKey = `jobs/${spoken.id}/attempt-1/lipsync.mp4`;
    assert.deepEqual(spoken.outcome, { kind: 'completed', result: { videoKey, durationSec: 2, frameCount: 50 } }, 'the key is relative to Ann\'s namespace');
    assert.ok((await probe(path.join(bucket, 'tenants/ann', videoKey))).video, 'the video is in Ann\'s namespace');
    assert.equal(existsSync(path.join(bucket, 'jobs', spoken.id)), false);
  });

  test('cancel mid-render fails the job with the cancel and leaves no ffmpeg running', async () => {
    ffmpeg('-f', 'lavfi', '-i', 'sine=frequency=220:sample_rate=44100:duration=30', path.join(bucket, 'uploads/long.wav'));
    const { ctx, controller, progress } = context('lipsync');
    const running = pipelines.handlers.lipsync!({ avatarId: 'astro', audio: 'uploads/long.wav' }, ctx);
    await eventually(async () => progress.some(([stage]) => stage === 'render') || undefined, 120_000, 10);
    controller.abort(new Error('cancelled'));
    await assert.rejects(running, /cancelled/);
    const rendered = progress.filter(([stage]) => stage === 'render').length;
    assert.ok(rendered < 75, `stopped part way (${rendered} progress reports of 75)`);
    // SIGKILL is sent before the job rejects; the kernel reaps the processes a moment later.
    await eventually(async () => ffmpegChildren().length === 0 || undefined, 120_000, 10);
  });
});

/** Live ffmpeg processes started by this one, from /proc (zombies not counted). */
function ffmpegChildren(): number[] {
  return readdirSync('/proc').filter((name) => /^\d+$/.test(name)).flatMap((pid) => {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const [state, ppid] = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      return stat.includes('(ffmpeg)') && Number(ppid) === process.pid && state !== 'Z' ? [Number(pid)] : [];
    } catch {
      return []; // gone while we looked
    }
  });
}
