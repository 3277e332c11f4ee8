/**
 * `npm run bench:pipeline`: lipsync on a 720p avatar with 10 s and 60 s of speech, each run in its
 * own process (so peak RSS is its own), in two passes:
 *  1. the dev model set: throughput of the stages around the models (decode, audio features,
 *     blend, encode), each alone and together in the same run;
 *  2. the models replaced by a stand-in GPU: a fixed 20 ms per frame waited on another thread,
 *     leaving the CPU free; overhead_ratio = end-to-end time / total model time shows whether
 *     decode and encode hide behind inference.
 * The last line is machine-readable; see README "Benchmarks".
 */
import { execFileSync, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Worker } from 'node:worker_threads';
import type { JobKind } from '@avatar-fleet/contracts';
import { writeDevModelSet } from '@avatar-fleet/worker/dist/src/inference/dev-models';
import { ModelLoader } from '@avatar-fleet/worker/dist/src/inference/model-loader';
import type { MuseTalkNetworks } from '@avatar-fleet/worker/dist/src/inference/musetalk';
import { binaries, decodeAudio, decodeFrames, startEncoder } from '@avatar-fleet/worker/dist/src/media/ffmpeg';
import { logMelWindows } from '@avatar-fleet/worker/dist/src/media/mel';
import { readBundleData, readManifest } from '@avatar-fleet/worker/dist/src/pipelines/avatar-prepare/bundle';
import { prepareAvatar, type PrepareModels } from '@avatar-fleet/worker/dist/src/pipelines/avatar-prepare/prepare-avatar';
import { lipsync } from '@avatar-fleet/worker/dist/src/pipelines/lipsync/lipsync';
import { audioPromptFor, concatSegments, videoFrameCount } from '@avatar-fleet/worker/dist/src/pipelines/lipsync/audio-features';
import type { JobContext } from '@avatar-fleet/worker/dist/src/pipelines/pipeline';
import { facePlanes, featheredMask, nchwToYuv, pasteFace } from '@avatar-fleet/worker/dist/src/pipelines/shared/frames';
import { createLogger } from '@avatar-fleet/worker/dist/src/runtime/logger';
import { createStorage } from '@avatar-fleet/worker/dist/src/storage/create-storage';
import { jobContext } from '@avatar-fleet/worker/dist/test/helpers/job-context';
import { loadModels } from '@avatar-fleet/worker/dist/src/pipelines/musetalk-pipelines';
import { round } from './lib/stats';

const MODEL_MS_PER_FRAME = 20;
const SAMPLES = path.resolve(__dirname, '../../samples');
const log = createLogger('error');

interface RunReport {
  frames: number;
  wallMs: number;
  modelMs: number;
  peakRssMb: number;
  stages?: Record<string, number>;
}

function context(root: string, kind: JobKind): JobContext {
  return jobContext(kind, createStorage({ driver: 'local', local: { root: path.join(root, 'bucket') } }), root, log).ctx;
}

async function loadDev(root: string): Promise<PrepareModels> {
  return loadModels(new ModelLoader({ modelDir: path.join(root, 'models'), executionProvider: 'cpu', requireRealModels: false, log }), log);
}

/** Wraps networks so the time spent in them is counted. */
function timed(inner: MuseTalkNetworks, total: { ms: number }): MuseTalkNetworks {
  const time = <T>(work: Promise<T>, started: number) => work.finally(() => (total.ms += performance.now() - started));
  return {
    version: inner.version, batchSize: inner.batchSize,
    vaeEncode: (x, n) => time(inner.vaeEncode(x, n), performance.now()),
    unet: (l, a, n) => time(inner.unet(l, a, n), performance.now()),
    vaeDecode: (l, n) => time(inner.vaeDecode(l, n), performance.now()),
    whisper: (m) => time(inner.whisper(m), performance.now()),
  };
}

/** A GPU stand-in: each UNet batch waits 20 ms per frame on another thread; the rest answers at once. */
function standIn(version: string, batchSize: number, total: { ms: number }): MuseTalkNetworks & { close(): void } {
  const thread = new Worker(
    `const { parentPort } = require('node:worker_threads');
     const cell = new Int32Array(new SharedArrayBuffer(4));
     parentPort.on('message', ({ id, ms }) => { Atomics.wait(cell, 0, 0, ms); parentPort.postMessage(id); });`,
    { eval: true },
  );
  const waiting = new Map<number, () => void>();
  let next = 0;
  thread.on('message', (id: number) => waiting.get(id)?.());
  const gray = new Float32Array(batchSize * 3 * 256 * 256).fill(0.1);
  return {
    version, batchSize,
    vaeEncode: async (_x, n) => new Float32Array(n * 8 * 32 * 32),
    unet: (_l, _a, n) => new Promise((resolve) => {
      const id = next++;
      total.ms += MODEL_MS_PER_FRAME * n;
      waiting.set(id, () => {
        waiting.delete(id);
        resolve(new Float32Array(n * 4 * 32 * 32));
      });
      thread.postMessage({ id, ms: MODEL_MS_PER_FRAME * n });
    }),
    vaeDecode: async (_l, n) => gray.subarray(0, n * 3 * 256 * 256),
    whisper: async () => new Float32Array(1500 * 5 * 384),
    close: () => void thread.terminate(),
  };
}

/** Each stage around the models, alone: decode, audio features, blend, encode. Frames per second (audio: x real time). */
async function stagesAlone(root: string, audioFile: string, frames: number, models: PrepareModels): Promise<Record<string, number>> {
  const ctx = context(root, 'lipsync');
  const manifest = (await readManifest(ctx.storage, 'bench', ctx.scratchDir))!;
  const bundle = await readBundleData(ctx.storage, manifest, ctx.scratchDir);
  const { width, height } = manifest;
  let t = performance.now();
  let n = 0;
  const kept: Buffer[] = [];
  while (n < frames) for await (const f of decodeFrames(bundle.framesFile, { width, height, maxFrames: frames - n, pixelFormat: 'yuv420p' })) { if (kept.length < 8) kept.push(f); n++; }
  const decodeFps = frames / ((performance.now() - t) / 1000);
  t = performance.now();
  const samples = await decodeAudio(audioFile);
  const windows = logMelWindows(samples);
  const hidden = await Promise.all(windows.map((w) => models.musetalk.whisper(w)));
  const features = concatSegments(hidden, samples.length);
  const total = videoFrameCount(samples.length, 25);
  const prompt = new Float32Array(50 * 384);
  for (let i = 0; i < total; i++) audioPromptFor(features, i, 25, prompt);
  const audioX = samples.length / 16_000 / ((performance.now() - t) / 1000);
  const face = new Float32Array(3 * 256 * 256).fill(0.2);
  const mask = featheredMask(256);
  const [x, y, size] = manifest.boxes[0]!;
  t = performance.now();
  const planes = facePlanes(256);
  for (let i = 0; i < frames; i++) pasteFace(kept[i % kept.length]!, width, height, nchwToYuv(face, 0, planes), mask, { x, y, size });
  const blendFps = frames / ((performance.now() - t) / 1000);
  t = performance.now();
  const encoder = startEncoder({ output: path.join(ctx.scratchDir, 'alone.mp4'), width, height, fps: 25, audio: audioFile, pixelFormat: 'yuv420p' });
  for (let i = 0; i < frames; i++) await encoder.write(kept[i % kept.length]!);
  await encoder.finish();
  const encodeFps = frames / ((performance.now() - t) / 1000);
  return { decodeFps, audioX, blendFps, encodeFps };
}

/** One measured lipsync, in this (child) process. */
async function measure(root: string, pass: 'dev' | 'standin', seconds: number): Promise<RunReport> {
  const dev = await loadDev(root);
  const modelTime = { ms: 0 };
  const stand = pass === 'standin' ? standIn(dev.musetalk.version, dev.musetalk.batchSize, modelTime) : undefined;
  const models: PrepareModels = { faces: dev.faces, musetalk: stand ?? timed(dev.musetalk, modelTime) };
  let peak = process.memoryUsage().rss;
  const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 50);
  const started = performance.now();
  const result = await lipsync({ avatarId: 'bench', audio: `speech-${seconds}s.wav` }, models, context(root, 'lipsync'));
  const wallMs = performance.now() - started;
  clearInterval(sampler);
  stand?.close();
  const report: RunReport = { frames: result.frameCount, wallMs, modelMs: modelTime.ms, peakRssMb: peak / 1048576 };
  if (pass === 'dev' && seconds === 10) report.stages = await stagesAlone(root, path.join(root, 'bucket', `speech-${seconds}s.wav`), result.frameCount, dev);
  return report;
}

function child(root: string, pass: string, seconds: number): Promise<RunReport> {
  return new Promise((resolve, reject) => {
    const proc = spawn(process.execPath, [__filename, '--run', root, pass, String(seconds)], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    proc.stdout.on('data', (d: Buffer) => (out += d));
    proc.on('exit', (code) => (code === 0 ? resolve(JSON.parse(out.trim().split('\n').at(-1)!) as RunReport) : reject(new Error(`run ${pass} ${seconds}s exited ${code}`))));
  });
}

async function main(): Promise<void> {
  const root = mkdtempSync(path.join(os.tmpdir(), 'bench-pipeline-'));
  try {
    const ff = (...args: string[]) => execFileSync(binaries().ffmpeg, ['-y', '-loglevel', 'error', ...args]);
    await writeDevModelSet(path.join(root, 'models', 'musetalk'), { batchSize: 8 });
    mkdirSync(path.join(root, 'bucket'), { recursive: true });
    // A 720p avatar: the sample face, large in frame, 2 s at 25 fps (the bundle loops it).
    ff('-loop', '1', '-i', path.join(SAMPLES, 'face.jpg'), '-t', '2', '-r', '25', '-vf', 'scale=1280:1280,crop=1280:720:0:60', '-c:v', 'libx264', '-pix_fmt', 'yuv420p', path.join(root, 'bucket', 'source.mp4'));
    for (const s of [10, 60]) ff('-stream_loop', '-1', '-i', path.join(SAMPLES, 'speech.m4a'), '-t', String(s), '-ac', '1', '-ar', '16000', path.join(root, 'bucket', `speech-${s}s.wav`));
    await prepareAvatar({ source: 'source.mp4', avatarId: 'bench', fps: 25, bboxShift: 0 }, await loadDev(root), context(root, 'avatar.prepare'));
    console.log('lipsync, 720p avatar (1280x720), 25 fps, libx264 veryfast; each run in its own process');
    const dev10 = await child(root, 'dev', 10);
    const dev60 = await child(root, 'dev', 60);
    const s = dev10.stages!;
    const nonModelFps = dev10.frames / ((dev10.wallMs - dev10.modelMs) / 1000);
    console.log(`1. dev model set (model stage ${round(dev10.modelMs / dev10.frames, 2)} ms/frame on this CPU):`);
    console.log(`   alone: decode ${Math.round(s.decodeFps!)} fps, audio features ${round(s.audioX!, 1)}x real time, blend ${Math.round(s.blendFps!)} fps, encode ${Math.round(s.encodeFps!)} fps`);
    console.log(`   together: 10 s: ${dev10.frames} frames in ${round(dev10.wallMs / 1000, 2)} s, ${Math.round(nonModelFps)} fps without the model time; ` +
      `60 s: ${dev60.frames} frames in ${round(dev60.wallMs / 1000, 2)} s; peak RSS ${Math.round(dev10.peakRssMb)} / ${Math.round(dev60.peakRssMb)} MB`);
    const stand10 = await child(root, 'standin', 10);
    const stand60 = await child(root, 'standin', 60);
    const ratio = stand10.wallMs / stand10.modelMs;
    console.log(`2. GPU stand-in, ${MODEL_MS_PER_FRAME} ms/frame on another thread: 10 s: ${round(stand10.wallMs / 1000, 2)} s for ${round(stand10.modelMs / 1000, 2)} s of model time ` +
      `(ratio ${round(ratio, 3)}); 60 s: ratio ${round(stand60.wallMs / stand60.modelMs, 3)}, peak RSS ${Math.round(stand10.peakRssMb)} / ${Math.round(stand60.peakRssMb)} MB`);
    console.log(`pipeline nonmodel_fps=${Math.round(nonModelFps)} overhead_ratio=${round(ratio, 3)} rss10_mb=${Math.round(dev10.peakRssMb)} rss60_mb=${Math.round(dev60.peakRssMb)}`);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}

if (process.argv[2] === '--run') {
  measure(process.argv[3]!, process.argv[4] as 'dev' | 'standin', Number(process.argv[5])).then(
    (report) => { console.log(JSON.stringify(report)); process.exit(0); },
    (error: Error) => { console.error(error.stack ?? error.message); process.exit(1); },
  );
} else {
  main().catch((error: Error) => {
    console.error(error.stack ?? error.message);
    process.exit(1);
  });
}
