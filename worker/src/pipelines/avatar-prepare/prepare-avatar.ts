import path from 'node:path';
import { mkdir, rm } from 'node:fs/promises';
import type { AvatarPrepareResult } from '@avatar-fleet/contracts';
import { scaleFaceBox, type FaceBox, type FaceDetector } from '../../inference/face-detector';
import { landmarkBox, type FaceLandmarker } from '../../inference/face-landmarks';
import { VAE_SCALE, type MuseTalkNetworks } from '../../inference/musetalk';
import { decodeFrames, MediaError, probe, startEncoder, type VideoCodec } from '../../media/ffmpeg';
import { fetchMedia } from '../../media/fetch-media';
import { reversedFrames } from '../../media/ping-pong';
import { PipelineError, type JobContext } from '../pipeline';
import { toNchw } from '../shared/frames';
import { jawBlendMask } from './blend-mask';
import {
  bundlePrefix, CROP_SIZE, LATENT_SIZE, MASK_SIZE, PREPROCESSING_VERSION, readManifest, sameParams, writeBundle, type BundleManifest, type BundleParams,
} from './bundle';
import { cropResize, FaceTrackError, museTalkRect, rectCrop, trackFaces, type CropBox, type FaceObservation, type TrackedFace } from './face-track';

/** The face detector and the landmark network: other ones mean other crops, so a bundle is rebuilt. */
export const DETECTOR_ID = 'blazeface-front-128+face-api-landmark-68';
/** Longest source accepted, in frames at the bundle's fps (a minute at 25 fps). */
export const MAX_SOURCE_FRAMES = 1_500;
/**
 * Detection runs on a copy no wider than this: BlazeFace sees 128 px anyway, and the landmark network
 * 112 px of the face, so only faces narrower than about a sixth of the frame lose detail to the copy.
 */
const DETECT_WIDTH = 640;

export interface PrepareModels {
  musetalk: MuseTalkNetworks;
  faces: FaceDetector;
  landmarks: FaceLandmarker;
  /** The codec of lipsync outputs (the avatar loop is always libx264, tuned for decoding). */
  videoCodec?: VideoCodec;
}

export interface PrepareRequest {
  avatarId: string;
  source: string;
  fps: number;
  bboxShift: number;
}

const even = (n: number) => Math.max(2, Math.round(n / 2) * 2);

/**
 * BlazeFace (short range) sees the frame letterboxed to 128 px, so in a wide shot a face can be too
 * small for it. When the whole frame shows no face, square tiles across the long side are tried,
 * each seen at 128 px: a face a sixth of a 16:9 frame's height is found this way.
 */
async function detectFaces(detector: FaceDetector, rgb: Uint8Array, width: number, height: number): Promise<FaceBox[]> {
  const whole = await detector.detect(rgb, width, height);
  if (whole.length > 0 || width === height) return whole;
  const side = Math.min(width, height);
  const long = Math.max(width, height);
  const tiles = Math.ceil(long / side) + 1; // overlapping, so a face on a seam is whole in one tile
  const step = (long - side) / (tiles - 1);
  const tile = new Uint8Array(side * side * 3);
  const found: FaceBox[] = [];
  for (let t = 0; t < tiles; t++) {
    const offset = Math.round(t * step);
    const [ox, oy] = width > height ? [offset, 0] : [0, offset];
    for (let y = 0; y < side; y++) tile.set(rgb.subarray(((oy + y) * width + ox) * 3, ((oy + y) * width + ox + side) * 3), y * side * 3);
    for (const face of await detector.detect(tile, side, side)) {
      found.push({ ...face, x: face.x + ox, y: face.y + oy, keypoints: face.keypoints.map(([kx, ky]) => [kx + ox, ky + oy] as [number, number]) });
    }
  }
  return found.sort((a, b) => b.score - a.score);
}

/** Faces further down a frame's list than this get no landmarks: only the best few can be followed. */
const MAX_FACES = 4;

/** The faces of a frame (on a copy `scale` times the source's size) with their landmarks, in source pixels. */
async function observeFaces(models: PrepareModels, rgb: Uint8Array, width: number, height: number, scale: number): Promise<FaceObservation[]> {
  const out: FaceObservation[] = [];
  for (const face of (await detectFaces(models.faces, rgb, width, height)).slice(0, MAX_FACES)) {
    const landmarks = await models.landmarks.detect(rgb, width, height, landmarkBox(face));
    out.push({ ...scaleFaceBox(face, 1 / scale), landmarks: landmarks.map((v) => v / scale) });
  }
  return out;
}

/** The parameters a bundle made now for `request` would record: one that records others is rebuilt. */
export function bundleParams(request: Pick<PrepareRequest, 'fps' | 'bboxShift'>, models: PrepareModels): BundleParams {
  return { fps: request.fps, bboxShift: request.bboxShift, modelVersion: models.musetalk.version, detector: DETECTOR_ID, preprocessing: PREPROCESSING_VERSION };
}

/**
 * Builds (or reuses) the avatar bundle for `request`: face boxes from BlazeFace and 68 landmarks on
 * every frame, smoothed; MuseTalk's rectangles from the landmarks; 256x256 crops VAE-encoded masked
 * and whole; jaw-mode blend masks from the landmarks; the frames as a video that
 * plays forward then backward. A bundle made with the same parameters and model version is reused.
 */
export async function prepareAvatar(request: PrepareRequest, models: PrepareModels, ctx: JobContext): Promise<BundleManifest & { reused: boolean }> {
  const params = bundleParams(request, models);
  const existing = await readManifest(ctx.storage, request.avatarId, ctx.scratchDir, ctx.signal).catch(() => undefined);
  if (existing && sameParams(existing.params, params) && existing.source === request.source) {
    ctx.log.info('avatar bundle reused', { avatarId: request.avatarId, frames: existing.frameCount });
    return { ...existing, reused: true };
  }
  const dir = path.join(ctx.scratchDir, `prepare-${request.avatarId}`);
  const source = await fetchMedia(request.source, `source-${request.avatarId}`, { storage: ctx.storage, scratchDir: ctx.scratchDir, signal: ctx.signal, access: ctx.mediaAccess });
  const info = await probe(source);
  if (!info.video) throw new MediaError('no_video', 'the source has no video or image stream');
  const width = even(info.video.width);
  const height = even(info.video.height);
  await mkdir(dir, { recursive: true });

  // Pass 1: the best face per frame, on a small copy.
  ctx.progress('detect', 0);
  const scale = Math.min(1, DETECT_WIDTH / width);
  const dw = even(width * scale);
  const dh = even(height * scale);
  const detections: FaceObservation[][] = [];
  for await (const frame of decodeFrames(source, { width: dw, height: dh, fps: request.fps, signal: ctx.signal })) {
    if (detections.length >= MAX_SOURCE_FRAMES) throw new MediaError('media_too_long', `the source is longer than ${MAX_SOURCE_FRAMES} frames at ${request.fps} fps`);
    detections.push(await observeFaces(models, frame, dw, dh, scale));
    if (detections.length % 10 === 0) ctx.progress('detect', Math.min(0.99, detections.length / MAX_SOURCE_FRAMES));
  }
  if (detections.length === 0) throw new MediaError('no_video', 'the source has no decodable frame');
  let track: TrackedFace[];
  try {
    track = trackFaces(detections);
  } catch (error) {
    if (error instanceof FaceTrackError) throw new PipelineError(error.code, error.message, false);
    throw error;
  }
  const rects = track.map((face) => museTalkRect(face, width, height, { bboxShift: request.bboxShift }));
  const boxes: CropBox[] = rects.map((rect) => rectCrop(rect, width, height));
  const frameCount = boxes.length;

  // Pass 2: crops -> VAE latents (masked + reference), the forward frames into the loop video, and a
  // near-lossless copy to read backward from.
  const loopFile = path.join(dir, 'frames.mp4');
  const forwardFile = path.join(dir, 'forward.mp4');
  // Every lipsync of this avatar decodes the loop again: make it cheap to decode.
  const loop = startEncoder({ output: loopFile, width, height, fps: request.fps, crf: 14, tune: 'fastdecode', signal: ctx.signal });
  const forward = frameCount > 2 ? startEncoder({ output: forwardFile, width, height, fps: request.fps, crf: 0, signal: ctx.signal }) : undefined;
  const batch = models.musetalk.batchSize;
  const latents = new Float32Array(frameCount * LATENT_SIZE);
  // MuseTalk's "jaw" blend mask per frame, from the frame's landmarks.
  const masks = new Uint8Array(frameCount * MASK_SIZE);
  track.forEach((face, i) => masks.set(jawBlendMask(face.landmarks, rects[i]!, boxes[i]!, CROP_SIZE), i * MASK_SIZE));
  const plane = 3 * CROP_SIZE * CROP_SIZE;
  const masked = new Float32Array(batch * plane);
  const whole = new Float32Array(batch * plane);
  const crop = new Uint8Array(plane);
  let pending = 0;
  let done = 0;
  const flush = async () => {
    if (pending === 0) return;
    const m = await models.musetalk.vaeEncode(masked, pending);
    const r = await models.musetalk.vaeEncode(whole, pending);
    for (let k = 0; k < pending; k++) {
      const out = (done + k) * LATENT_SIZE;
      const half = LATENT_SIZE / 2;
      // Moments hold mean (4 channels) then log-variance (4): the UNet takes the scaled means, masked first.
      for (let j = 0; j < half; j++) {
        latents[out + j] = m[k * LATENT_SIZE + j]! * VAE_SCALE;
        latents[out + half + j] = r[k * LATENT_SIZE + j]! * VAE_SCALE;
      }
    }
    done += pending;
    pending = 0;
    ctx.progress('encode', done / frameCount);
  };
  let i = 0;
  for await (const frame of decodeFrames(source, { width, height, fps: request.fps, maxFrames: frameCount, signal: ctx.signal })) {
    crop.set(cropResize(frame, width, height, boxes[i]!, CROP_SIZE));
    toNchw(crop, CROP_SIZE, masked, pending * plane, true);
    toNchw(crop, CROP_SIZE, whole, pending * plane, false);
    await loop.write(frame);
    await forward?.write(frame);
    i++;
    if (++pending === batch) await flush();
  }
  await flush();
  await forward?.finish();
  if (done !== frameCount) throw new MediaError('media_unreadable', `decoded ${done} frames on the second pass, ${frameCount} on the first`, true);

  // Pass 3: the way back, without repeating the turning frames.
  if (forward) {
    let k = 0;
    for await (const frame of reversedFrames(forwardFile, { width, height, fps: request.fps, frameCount, signal: ctx.signal })) {
      k++;
      if (k === 1 || k === frameCount) continue;
      await loop.write(frame);
    }
  }
  await loop.finish();
  ctx.progress('upload', 0);
  const manifest = await writeBundle(ctx.storage, dir, {
    avatarId: request.avatarId, source: request.source, params, frameCount, width, height,
    boxes: boxes.map((b) => [b.x, b.y, b.width, b.height] as [number, number, number, number]),
  }, { latents, masks }, loopFile, ctx.signal);
  await rm(dir, { recursive: true, force: true });
  ctx.log.info('avatar bundle built', { avatarId: request.avatarId, frames: frameCount, width, height });
  return { ...manifest, reused: false };
}

export function prepareResult(manifest: BundleManifest): AvatarPrepareResult {
  return { avatarId: manifest.avatarId, manifestKey: `${bundlePrefix(manifest.avatarId)}/manifest.json`, frameCount: manifest.frameCount };
}
