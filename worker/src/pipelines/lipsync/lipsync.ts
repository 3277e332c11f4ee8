import path from 'node:path';
import type { LipsyncInput, LipsyncResult } from '@avatar-fleet/contracts';
import { decodeAudio, startEncoder } from '../../media/ffmpeg';
import { fetchMedia } from '../../media/fetch-media';
import { loopFrames } from '../../media/loop-frames';
import { logMelWindows, SAMPLE_RATE } from '../../media/mel';
import { PipelineError, type JobContext } from '../pipeline';
import { BoundedQueue, runStages } from '../shared/bounded-queue';
import { facePlanes, nchwToYuv, pasteFace } from '../shared/frames';
import { CROP_SIZE, LATENT_SIZE, loopLength, MASK_SIZE, readBundleData, readManifest, sameParams, sourceFrame, type BundleManifest } from '../avatar-prepare/bundle';
import { DETECTOR_ID, prepareAvatar, type PrepareModels } from '../avatar-prepare/prepare-avatar';
import { audioPromptFor, concatSegments, videoFrameCount } from './audio-features';

/** Longest speech a lipsync job takes (10 minutes); longer is refused, not truncated. */
export const MAX_AUDIO_SECONDS = 600;
/** Frames decoded ahead of inference, and composed frames waiting for the encoder. */
const QUEUE_DEPTH = 8;
const PROMPT = 50 * 384;
const IMAGE = 3 * CROP_SIZE * CROP_SIZE;

interface Decoded {
  index: number;
  frame: Buffer;
}

interface Generated extends Decoded {
  /** The batch's decoded faces [n,3,256,256] in [-1,1]; this frame's starts at `offset`. */
  faces: Float32Array;
  offset: number;
}

/** The bundle to animate: the named avatar (rebuilt if made for other weights), or the job's source video prepared inline. */
async function avatarFor(input: LipsyncInput, models: PrepareModels, ctx: JobContext): Promise<BundleManifest> {
  if (input.sourceVideo) {
    return prepareAvatar({ avatarId: `inline-${ctx.job.id}`, source: input.sourceVideo, fps: 25, bboxShift: 0 }, models, ctx);
  }
  const manifest = await readManifest(ctx.storage, input.avatarId!, ctx.scratchDir, ctx.signal);
  if (!manifest) throw new PipelineError('avatar_not_found', `avatar ${input.avatarId} does not exist; run avatar.prepare first`);
  const current = { ...manifest.params, modelVersion: models.musetalk.version, detector: DETECTOR_ID };
  if (sameParams(manifest.params, current)) return manifest;
  ctx.log.info('avatar bundle made for other models; rebuilding it', { avatarId: manifest.avatarId });
  return prepareAvatar({ avatarId: manifest.avatarId, source: manifest.source, fps: manifest.params.fps, bboxShift: manifest.params.bboxShift }, models, ctx);
}

/**
 * MuseTalk lip-sync: audio -> Whisper features -> one UNet prompt per video frame; the avatar's
 * frames loop forward and backward; each frame's face is generated in batches, decoded, pasted back
 * with the blend mask, and streamed into ffmpeg with the original audio. Frames stay yuv420p from
 * the decoder to the encoder. Decode, inference and
 * encode run as three stages joined by bounded queues, so memory stays flat for any length.
 */
export async function lipsync(input: LipsyncInput, models: PrepareModels, ctx: JobContext): Promise<LipsyncResult> {
  const { musetalk } = models;
  const manifest = await avatarFor(input, models, ctx);
  const bundle = await readBundleData(ctx.storage, manifest, ctx.scratchDir, ctx.signal);

  ctx.progress('audio', 0);
  const audioFile = await fetchMedia(input.audio, 'speech', { storage: ctx.storage, scratchDir: ctx.scratchDir, signal: ctx.signal });
  const samples = await decodeAudio(audioFile, { sampleRate: SAMPLE_RATE, maxSeconds: MAX_AUDIO_SECONDS, signal: ctx.signal });
  const hidden: Float32Array[] = [];
  for (const window of logMelWindows(samples)) {
    ctx.signal.throwIfAborted();
    hidden.push(await musetalk.whisper(window));
  }
  const features = concatSegments(hidden, samples.length);
  hidden.length = 0; // the per-window copies are not needed once joined
  const fps = manifest.params.fps;
  const total = videoFrameCount(samples.length, fps);
  if (total === 0) throw new PipelineError('no_audio', 'the audio is shorter than one video frame');

  const { width, height } = manifest;
  const output = path.join(ctx.scratchDir, 'lipsync.mp4');
  const encoder = startEncoder({ output, width, height, fps, audio: audioFile, crf: input.options?.crf, outputHeight: input.options?.outputHeight, codec: models.videoCodec, pixelFormat: 'yuv420p', signal: ctx.signal });
  const decoded = new BoundedQueue<Decoded>(QUEUE_DEPTH);
  const generated = new BoundedQueue<Generated>(QUEUE_DEPTH);
  const batchSize = input.options?.batchSize ?? musetalk.batchSize;

  await runStages([decoded, generated], [
    // Decode: the looping bundle video, as often as the audio needs (from memory when it is short).
    async () => {
      let index = 0;
      const frames = loopFrames(bundle.framesFile, { width, height, pixelFormat: 'yuv420p', loopLength: loopLength(manifest.frameCount), total, signal: ctx.signal });
      for await (const frame of frames) await decoded.push({ index: index++, frame });
      decoded.close();
    },
    // Inference: batches through the UNet and the VAE decoder, one batch always in flight while
    // the previous one's results are handed on, so the GPU does not wait on this loop.
    async () => {
      let batch: Decoded[] = [];
      let inFlight: Promise<void> | undefined;
      const launch = (items: Decoded[]) => {
        const latents = new Float32Array(items.length * LATENT_SIZE);
        const prompts = new Float32Array(items.length * PROMPT);
        items.forEach((item, k) => {
          const src = sourceFrame(item.index, manifest.frameCount);
          latents.set(bundle.latents.subarray(src * LATENT_SIZE, (src + 1) * LATENT_SIZE), k * LATENT_SIZE);
          audioPromptFor(features, item.index, fps, prompts.subarray(k * PROMPT, (k + 1) * PROMPT));
        });
        const images = musetalk.unet(latents, prompts, items.length).then((out) => musetalk.vaeDecode(out, items.length));
        const previous = inFlight;
        inFlight = (async () => {
          const faces = await images;
          await previous; // hand results on in frame order
          for (let k = 0; k < items.length; k++) await generated.push({ ...items[k]!, faces, offset: k * IMAGE });
        })();
        // Awaited later (by the next launch or the end); marked handled now so a failure in between
        // is not an unhandled rejection.
        inFlight.catch(() => undefined);
        // The batch before this one must be handed on before a third is launched: two in flight at most.
        return previous;
      };
      for await (const item of decoded) {
        batch.push(item);
        if (batch.length === batchSize) {
          await launch(batch);
          batch = [];
        }
      }
      if (batch.length) await launch(batch);
      await inFlight;
      generated.close();
    },
    // Compose and encode, in frame order.
    async () => {
      let done = 0;
      const face = facePlanes(CROP_SIZE);
      for await (const item of generated) {
        const src = sourceFrame(item.index, manifest.frameCount);
        const [x, y, size] = manifest.boxes[src]!;
        nchwToYuv(item.faces, item.offset, face);
        pasteFace(item.frame, width, height, face, bundle.masks.subarray(src * MASK_SIZE, (src + 1) * MASK_SIZE), { x, y, size });
        await encoder.write(item.frame);
        if (++done % 10 === 0 || done === total) ctx.progress('render', done / total, `${done} of ${total} frames`);
      }
    },
  ]).catch(async (error: unknown) => {
    await encoder.finish().catch(() => undefined);
    // Stopped from outside: every stage fails in its own way; the abort is the one reason.
    throw ctx.signal.aborted ? ctx.signal.reason : error;
  });
  await encoder.finish();
  ctx.progress('upload', 0);
  const stored = await ctx.putOutput('lipsync.mp4', output, 'video/mp4');
  return { videoKey: stored.key, durationSec: total / fps, frameCount: total };
}
