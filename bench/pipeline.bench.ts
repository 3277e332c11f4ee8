/**
 * `npm run bench:pipeline`: lipsync on a 720p avatar with 10 s and 60 s of speech, each run in its
 * own process (so peak RSS and CPU are its own):
 *  1. the dev model set on this CPU: the whole job, model time counted apart;
 *  2. models that cost nothing (stand-ins answering at once): what the pipeline itself, audio
 *     features, composing and the one render ffmpeg, can do: nonmodel_fps;
 *  3. the floor: one plain ffmpeg decoding the frames that pass rendered (its output video) and
 *     encoding them again with the same settings and audio; ffmpeg_ratio = nonmodel_fps / its fps.
 *     Absolute figures differ 2-5x between machines; the ratio, measured in the same run, says how
 *     close the pipeline comes to what this machine's ffmpeg can do at all;
 *  4. a GPU stand-in: 20 ms per frame waited on another thread, leaving the CPU free;
 *     overhead_ratio = end-to-end time / model time shows whether the rest hides behind inference.
 * The last line is machine-readable; see docs/benchmarks.md.
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
import { binaries, decodeAudio, h264Output } from '@avatar-fleet/worker/dist/src/media/ffmpeg';
import { logMelWindow } from '@avatar-fleet/worker/dist/src/media/mel';
import { MASK_SIZE, readBundleData, readManifest } from '@avatar-fleet/worker/dist/src/pipelines/avatar-prepare/bundle';
import { prepareAvatar, type PrepareModels } from '@avatar-fleet/worker/dist/src/pipelines/avatar-prepare/prepare-avatar';
import { lipsync } from '@avatar-fleet/worker/dist/src/pipelines/lipsync/lipsync';
import { StreamingAudioFeatures, videoFrameCount } from '@avatar-fleet/worker/dist/src/pipelines/lipsync/audio-features';
import type { JobContext } from '@avatar-fleet/worker/dist/src/pipelines/pipeline';
import { drawFace, facePlanes, firstMaskedRow, nchwToYuv, patchArea, patchPlanes } from '@avatar-fleet/worker/dist/src/pipelines/shared/frames';
import { createLogger } from '@avatar-fleet/worker/dist/src/runtime/logger';
import { createStorage } from '@avatar-fleet/worker/dist/src/storage/create-storage';
import { jobContext } from '@avatar-fleet/worker/dist/test/helpers/job-context';
import { loadModels } from '@avatar-fleet/worker/dist/src/pipelines/musetalk-pipelines';
import { exitedChildrenCpuSec } from './lib/process-cpu';
import { round } from './lib/stats';

const MODEL_MS_PER_FRAME = 20;
/** Runs of the pipeline without models and of its floor, taken in turns. */
const ROUNDS = 3;
/** dev: the dev model set on this CPU; standin: a GPU stand-in taking MODEL_MS_PER_FRAME; free: models that cost nothing. */
type Pass = 'dev' | 'standin' | 'free';
const SAMPLES = path.resolve(__dirname, '../../samples');
const log = createLogger('error');

interface RunReport {
  frames: number;
  wallMs: number;
  modelMs: number;
  peakRssMb: number;
  /** The rendered video, in the local bucket. */
  videoKey: string;
  stages?: Record<string, number>;
  /** CPU time during the run: this process (all its threads), and the ffmpeg processes it ran. */
  cpu: { nodeMs: number; ffmpegMs: number };
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

/**
 * A GPU stand-in: each UNet batch waits `msPerFrame` per frame on another thread (none at all for
 * 0); the rest answers at once. Its faces are a grey head with a dark mouth that opens and closes,
 * so the encoder sees the mouth move as it would in a real render.
 */
function standIn(version: string, batchSize: number, total: { ms: number }, msPerFrame: number): MuseTalkNetworks & { close(): void } {
  const thread = msPerFrame > 0 ? new Worker(
    `const { parentPort } = require('node:worker_threads');
     const cell = new Int32Array(new SharedArrayBuffer(4));
     parentPort.on('message', ({ id, ms }) => { Atomics.wait(cell, 0, 0, ms); parentPort.postMessage(id); });`,
    { eval: true },
  ) : undefined;
  const waiting = new Map<number, () => void>();
  let next = 0;
  thread?.on('message', (id: number) => waiting.get(id)?.());
  // Eight batches made once and handed out in turn, read-only: models that cost nothing copy nothing.
  const face = 3 * 256 * 256;
  const batches = Array.from({ length: 8 }, (_, b) => {
    const out = new Float32Array(batchSize * face);
    for (let k = 0; k < batchSize; k++) {
      const open = 4 + 24 * Math.abs(Math.sin(((b * batchSize + k) * Math.PI) / 8));
      for (let ch = 0; ch < 3; ch++) for (let y = 0; y < 256; y++) for (let x = 0; x < 256; x++) {
        const inMouth = ((x - 128) / 48) ** 2 + ((y - 190) / open) ** 2 < 1;
        out[k * face + ch * 65536 + y * 256 + x] = inMouth ? -0.6 : 0.1 + 0.2 * (y / 256);
      }
    }
    return out;
  });
  let calls = 0;
  const faces = (n: number) => batches[calls++ % batches.length]!.subarray(0, n * face);
  return {
    version, batchSize,
    vaeEncode: async (_x, n) => new Float32Array(n * 8 * 32 * 32),
    unet: (_l, _a, n) => new Promise((resolve) => {
      total.ms += msPerFrame * n;
      if (!thread) return resolve(new Float32Array(n * 4 * 32 * 32));
      const id = next++;
      waiting.set(id, () => {
        waiting.delete(id);
        resolve(new Float32Array(n * 4 * 32 * 32));
      });
      thread.postMessage({ id, ms: msPerFrame * n });
    }),
    vaeDecode: async (_l, n) => faces(n),
    whisper: async () => new Float32Array(1500 * 5 * 384),
    close: () => void thread?.terminate(),
  };
}

/** The Node-side stages alone: audio features (x real time) and composing a face into a patch (frames per second). */
async function stagesAlone(root: string, audioFile: string, frames: number, models: PrepareModels): Promise<Record<string, number>> {
  const ctx = context(root, 'lipsync');
  const manifest = (await readManifest(ctx.storage, 'bench', ctx.scratchDir))!;
  let t = performance.now();
  const samples = await decodeAudio(audioFile);
  // As lipsync runs it: windows encoded as the frames reach them, a batch of 8 at a time.
  const audio = new StreamingAudioFeatures(samples, (all, offset) => models.musetalk.whisper(logMelWindow(all, offset)));
  const total = videoFrameCount(samples.length, 25);
  const prompt = new Float32Array(50 * 384);
  for (let first = 0; first < total; first += 8) {
    await audio.prepare(first, Math.min(first + 8, total) - 1);
    for (let i = first; i < Math.min(first + 8, total); i++) audio.promptFor(i, prompt);
  }
  const audioX = samples.length / 16_000 / ((performance.now() - t) / 1000);
  const face = new Float32Array(3 * 256 * 256).fill(0.2);
  const mask = (await readBundleData(ctx.storage, manifest, ctx.scratchDir)).masks.subarray(0, MASK_SIZE);
  const [x, y, width, height] = manifest.boxes[0]!;
  const box = { x, y, width, height };
  const patch = patchPlanes(patchArea([box], [firstMaskedRow(mask, 256)], 256, manifest.width, manifest.height));
  const planes = facePlanes(256);
  t = performance.now();
  for (let i = 0; i < frames; i++) drawFace(patch, nchwToYuv(face, 0, planes), mask, box);
  const composeFps = frames / ((performance.now() - t) / 1000);
  return { audioX, composeFps };
}

/** One measured lipsync, in this (child) process. */
async function measure(root: string, pass: Pass, seconds: number): Promise<RunReport> {
  const dev = await loadDev(root);
  const modelTime = { ms: 0 };
  const stand = pass === 'dev' ? undefined : standIn(dev.musetalk.version, dev.musetalk.batchSize, modelTime, pass === 'standin' ? MODEL_MS_PER_FRAME : 0);
  const models: PrepareModels = { faces: dev.faces, landmarks: dev.landmarks, musetalk: stand ?? timed(dev.musetalk, modelTime) };
  // memoryUsage.rss() alone: memoryUsage() also walks the heap, which showed in the profile.
  let peak = process.memoryUsage.rss();
  const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage.rss())), 50);
  const started = performance.now();
  const cpuBefore = { self: process.cpuUsage(), children: exitedChildrenCpuSec() };
  const result = await lipsync({ avatarId: 'bench', audio: `speech-${seconds}s.wav` }, models, context(root, 'lipsync'));
  const wallMs = performance.now() - started;
  const self = process.cpuUsage(cpuBefore.self);
  const cpu = { nodeMs: (self.user + self.system) / 1000, ffmpegMs: (exitedChildrenCpuSec() - cpuBefore.children) * 1000 };
  clearInterval(sampler);
  stand?.close();
  const report: RunReport = { frames: result.frameCount, wallMs, modelMs: modelTime.ms, peakRssMb: peak / 1048576, videoKey: result.videoKey, cpu };
  if (pass === 'dev' && seconds === 10) report.stages = await stagesAlone(root, path.join(root, 'bucket', `speech-${seconds}s.wav`), result.frameCount, dev);
  return report;
}

/**
 * The floor: the very frames the pipeline rendered (its output video) decoded and encoded again by
 * one ffmpeg with lipsync's own encoder settings and audio. The encoder's cost depends on what it
 * encodes (the avatar's still loop alone costs x264 far less than the same loop with a mouth moving
 * in it), so only the same frames make a floor.
 */
function plainFfmpeg(root: string, rendered: RunReport, audioFile: string): { fps: number; cpuMs: number } {
  const started = performance.now();
  const cpuBefore = exitedChildrenCpuSec();
  execFileSync(binaries().ffmpeg, [
    '-y', '-loglevel', 'error', '-i', path.join(root, 'bucket', rendered.videoKey), '-i', audioFile,
    '-map', '0:v:0', '-map', '1:a:0', '-frames:v', String(rendered.frames), ...h264Output({}, path.join(root, 'plain.mp4'), true),
  ]);
  return { fps: rendered.frames / ((performance.now() - started) / 1000), cpuMs: (exitedChildrenCpuSec() - cpuBefore) * 1000 };
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
    const perFrame = (r: RunReport) => `CPU ${round(r.cpu.nodeMs / r.frames, 2)} ms/frame in Node, ${round(r.cpu.ffmpegMs / r.frames, 2)} in ffmpeg`;
    const dev10 = await child(root, 'dev', 10);
    const dev60 = await child(root, 'dev', 60);
    const s = dev10.stages!;
    console.log(`1. dev model set (model stage ${round(dev10.modelMs / dev10.frames, 2)} ms/frame on this CPU): 10 s: ${dev10.frames} frames in ${round(dev10.wallMs / 1000, 2)} s; ` +
      `60 s: ${dev60.frames} frames in ${round(dev60.wallMs / 1000, 2)} s; peak RSS ${Math.round(dev10.peakRssMb)} / ${Math.round(dev60.peakRssMb)} MB`);
    console.log(`   Node stages alone: audio features ${round(s.audioX!, 1)}x real time, composing a face into its patch ${Math.round(s.composeFps!)} fps`);
    // The pipeline and its floor in turns, three times each, medians kept: on a shared 2-core
    // machine one run of either can take half as long again for reasons outside the run.
    const frees: RunReport[] = [];
    const floors: Array<{ fps: number; cpuMs: number }> = [];
    for (let i = 0; i < ROUNDS; i++) {
      frees.push(await child(root, 'free', 60));
      floors.push(plainFfmpeg(root, frees[i]!, path.join(root, 'bucket', 'speech-60s.wav')));
    }
    const free60 = frees.sort((a, b) => a.wallMs - b.wallMs)[ROUNDS >> 1]!;
    const floor = floors.sort((a, b) => a.fps - b.fps)[ROUNDS >> 1]!;
    const nonModelFps = free60.frames / (free60.wallMs / 1000);
    const spread = (values: number[]) => `${Math.round(Math.min(...values))}-${Math.round(Math.max(...values))}`;
    console.log(`2. models that cost nothing, 60 s, median of ${ROUNDS}: ${free60.frames} frames in ${round(free60.wallMs / 1000, 2)} s = ${Math.round(nonModelFps)} fps ` +
      `(runs ${spread(frees.map((r) => r.frames / (r.wallMs / 1000)))} fps); ${perFrame(free60)}`);
    console.log(`3. plain ffmpeg, the ${free60.frames} frames that pass rendered decoded and encoded again in one process, median of ${ROUNDS}: ${Math.round(floor.fps)} fps ` +
      `(runs ${spread(floors.map((f) => f.fps))}), CPU ${round(floor.cpuMs / free60.frames, 2)} ms/frame; the pipeline reaches ${round(nonModelFps / floor.fps, 2)} of it`);
    const stand10 = await child(root, 'standin', 10);
    const stand60 = await child(root, 'standin', 60);
    const ratio = stand10.wallMs / stand10.modelMs;
    console.log(`4. GPU stand-in, ${MODEL_MS_PER_FRAME} ms/frame on another thread: 10 s: ${round(stand10.wallMs / 1000, 2)} s for ${round(stand10.modelMs / 1000, 2)} s of model time ` +
      `(ratio ${round(ratio, 3)}); 60 s: ratio ${round(stand60.wallMs / stand60.modelMs, 3)}, peak RSS ${Math.round(stand10.peakRssMb)} / ${Math.round(stand60.peakRssMb)} MB`);
    console.log(`pipeline nonmodel_fps=${Math.round(nonModelFps)} overhead_ratio=${round(ratio, 3)} rss10_mb=${Math.round(dev10.peakRssMb)} rss60_mb=${Math.round(dev60.peakRssMb)} ffmpeg_fps=${Math.round(floor.fps)} ffmpeg_ratio=${round(nonModelFps / floor.fps, 2)}`);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}

if (process.argv[2] === '--run') {
  measure(process.argv[3]!, process.argv[4] as Pass, Number(process.argv[5])).then(
    (report) => { console.log(JSON.stringify(report)); process.exit(0); },
    (error: Error) => { console.error(error.stack ?? error.message); process.exit(1); },
  );
} else {
  main().catch((error: Error) => {
    console.error(error.stack ?? error.message);
    process.exit(1);
  });
}
