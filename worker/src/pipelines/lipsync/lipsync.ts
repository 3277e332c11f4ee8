import path from 'node:path';
import type { LipsyncInput, LipsyncResult } from '@avatar-fleet/contracts';
import { decodeAudio } from '../../media/ffmpeg';
import { fetchMedia } from '../../media/fetch-media';
import { FramePool } from '../../media/frame-pool';
import { patchBytes, startRender } from '../../media/render';
import { logMelWindow, SAMPLE_RATE } from '../../media/mel';
import { PipelineError, type JobContext } from '../pipeline';
import { BoundedQueue, runStages } from '../shared/bounded-queue';
import { drawAlpha, drawColour, facePlanes, firstMaskedRow, nchwToYuv, patchArea, patchPlanes, type Rect } from '../shared/frames';
import { CROP_SIZE, LATENT_SIZE, loopLength, MASK_SIZE, readBundleData, readManifest, sameParams, sourceFrame, type BundleManifest } from '../avatar-prepare/bundle';
import { bundleParams, prepareAvatar, type PrepareModels } from '../avatar-prepare/prepare-avatar';
import { StreamingAudioFeatures, videoFrameCount } from './audio-features';

/** Longest speech a lipsync job takes (10 minutes); longer is refused, not truncated. */
export const MAX_AUDIO_SECONDS = 600;
/** Generated faces waiting to be composed. */
const QUEUE_DEPTH = 8;
/** Memory for the alpha planes of the loop's frames, drawn once each. */
const ALPHA_CACHE_BYTES = 32 * 1024 * 1024;
const PROMPT = 50 * 384;
const IMAGE = 3 * CROP_SIZE * CROP_SIZE;

interface Generated {
  index: number;
  /** The batch's decoded faces [n,3,256,256] in [-1,1]; this frame's starts at `offset`. */
  faces: Float32Array;
  offset: number;
}

/** The bundle to animate: the named avatar (rebuilt if made for other weights or by older preprocessing), or the job's source video prepared inline. */
async function avatarFor(input: LipsyncInput, models: PrepareModels, ctx: JobContext): Promise<BundleManifest> {
  if (input.sourceVideo) {
    return prepareAvatar({ avatarId: `inline-${ctx.job.id}`, source: input.sourceVideo, fps: 25, bboxShift: 0 }, models, ctx);
  }
  const manifest = await readManifest(ctx.storage, input.avatarId!, ctx.scratchDir, ctx.signal);
  if (!manifest) throw new PipelineError('avatar_not_found', `avatar ${input.avatarId} does not exist; run avatar.prepare first`);
  if (sameParams(manifest.params, bundleParams(manifest.params, models))) return manifest;
  ctx.log.info('avatar bundle made for other models or by older preprocessing; rebuilding it', { avatarId: manifest.avatarId });
  return prepareAvatar({ avatarId: manifest.avatarId, source: manifest.source, fps: manifest.params.fps, bboxShift: manifest.params.bboxShift }, models, ctx);
}

/**
 * MuseTalk lip-sync: audio -> Whisper features -> one UNet prompt per video frame; the avatar's
 * frames loop forward and backward; each frame's face is generated in batches and decoded, then
 * sent with its blend mask as a small patch to one ffmpeg that decodes the avatar's loop, lays each
 * patch over its frame and encodes with the original audio (media/render.ts). Inference and
 * composing run as two stages joined by a bounded queue, so memory stays flat for any length.
 */
export async function lipsync(input: LipsyncInput, models: PrepareModels, ctx: JobContext): Promise<LipsyncResult> {
  const { musetalk } = models;
  const manifest = await avatarFor(input, models, ctx);
  const bundle = await readBundleData(ctx.storage, manifest, ctx.scratchDir, ctx.signal);

  ctx.progress('audio', 0);
  const audioFile = await fetchMedia(input.audio, 'speech', { storage: ctx.storage, scratchDir: ctx.scratchDir, signal: ctx.signal, access: ctx.mediaAccess });
  const samples = await decodeAudio(audioFile, { sampleRate: SAMPLE_RATE, maxSeconds: MAX_AUDIO_SECONDS, signal: ctx.signal });
  const fps = manifest.params.fps;
  // Whisper runs on each 30 s window as the frames reach it, so long audio holds two windows' features, not all.
  const audio = new StreamingAudioFeatures(samples, (all, offset) => {
    ctx.signal.throwIfAborted();
    return musetalk.whisper(logMelWindow(all, offset));
  }, fps);
  const total = videoFrameCount(samples.length, fps);
  if (total === 0) throw new PipelineError('no_audio', 'the audio is shorter than one video frame');

  const { width, height } = manifest;
  const output = path.join(ctx.scratchDir, 'lipsync.mp4');
  const boxes: Rect[] = manifest.boxes.map(([x, y, width, height]) => ({ x, y, width, height }));
  const maskOf = (src: number) => bundle.masks.subarray(src * MASK_SIZE, (src + 1) * MASK_SIZE);
  const maskTops = boxes.map((_, src) => firstMaskedRow(maskOf(src), CROP_SIZE));
  const area = patchArea(boxes, maskTops, CROP_SIZE, width, height);
  const renderer = startRender({
    loopVideo: bundle.framesFile, loopFrames: loopLength(manifest.frameCount), width, height, fps, total, area, audio: audioFile, output,
    crf: input.options?.crf, outputHeight: input.options?.outputHeight, codec: models.videoCodec, signal: ctx.signal,
  });
  // Patch buffers go back to the pool once piped to ffmpeg, and are drawn into again.
  const pool = new FramePool(patchBytes(area));
  const generated = new BoundedQueue<Generated>(QUEUE_DEPTH);
  const batchSize = input.options?.batchSize ?? musetalk.batchSize;

  await runStages([generated], [
    // Inference: batches through the UNet and the VAE decoder, one batch always in flight while
    // the previous one's results are handed on, so the GPU does not wait on this loop.
    async () => {
      let inFlight: Promise<void> | undefined;
      // Inputs of the two batches that may be in flight, used in turn rather than made per batch:
      // a batch's inputs are free again once it is handed on, before the batch after next is launched.
      const inputs = [0, 1].map(() => ({ latents: new Float32Array(batchSize * LATENT_SIZE), prompts: new Float32Array(batchSize * PROMPT) }));
      let launched = 0;
      const launch = async (first: number, count: number) => {
        await audio.prepare(first, first + count - 1);
        const set = inputs[launched++ % 2]!;
        const latents = set.latents.subarray(0, count * LATENT_SIZE);
        const prompts = set.prompts.subarray(0, count * PROMPT);
        for (let k = 0; k < count; k++) {
          const src = sourceFrame(first + k, manifest.frameCount);
          latents.set(bundle.latents.subarray(src * LATENT_SIZE, (src + 1) * LATENT_SIZE), k * LATENT_SIZE);
          audio.promptFor(first + k, prompts.subarray(k * PROMPT, (k + 1) * PROMPT));
        }
        const images = musetalk.unet(latents, prompts, count).then((out) => musetalk.vaeDecode(out, count));
        const previous = inFlight;
        inFlight = (async () => {
          const faces = await images;
          await previous; // hand results on in frame order
          for (let k = 0; k < count; k++) await generated.push({ index: first + k, faces, offset: k * IMAGE });
        })();
        // Awaited later (by the next launch or the end); marked handled now so a failure in between
        // is not an unhandled rejection.
        inFlight.catch(() => undefined);
        // The batch before this one must be handed on before a third is launched: two in flight at most.
        return previous;
      };
      for (let first = 0; first < total; first += batchSize) {
        ctx.signal.throwIfAborted();
        await launch(first, Math.min(batchSize, total - first));
      }
      await inFlight;
      generated.close();
    },
    // Compose, in frame order: each face into a patch with its mask as alpha, for ffmpeg to lay over its frame.
    async () => {
      let done = 0;
      const face = facePlanes(CROP_SIZE);
      // A frame's alpha depends only on its mask and box, the same on every pass of the loop: kept.
      const alphas = new Map<number, Uint8Array>();
      const maxAlphas = Math.floor(ALPHA_CACHE_BYTES / (area.width * area.height));
      for await (const item of generated) {
        const src = sourceFrame(item.index, manifest.frameCount);
        // From the row above the mask's first: bilinear sampling reaches one row up.
        nchwToYuv(item.faces, item.offset, face, maskTops[src]! - 1);
        const patch = patchPlanes(area, pool.take());
        const alpha = alphas.get(src);
        if (alpha) patch.a.set(alpha);
        else {
          drawAlpha(patch, maskOf(src), boxes[src]!, CROP_SIZE);
          if (alphas.size < maxAlphas) alphas.set(src, patch.a.slice());
        }
        drawColour(patch, face, boxes[src]!);
        await renderer.write(patch.data, () => pool.give(patch.data));
        if (++done % 10 === 0 || done === total) ctx.progress('render', done / total, `${done} of ${total} frames`);
      }
    },
  ]).catch(async (error: unknown) => {
    await renderer.finish().catch(() => undefined);
    // Stopped from outside: every stage fails in its own way; the abort is the one reason.
    throw ctx.signal.aborted ? ctx.signal.reason : error;
  });
  await renderer.finish();
  ctx.progress('upload', 0);
  const stored = await ctx.putOutput('lipsync.mp4', output, 'video/mp4');
  return { videoKey: stored.key, durationSec: total / fps, frameCount: total };
}
