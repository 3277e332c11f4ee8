import { createHash } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { PipelineError } from '../pipeline';
import type { ObjectStorage } from '../../storage/storage';

/**
 * The avatar bundle `avatar.prepare` writes under `avatars/{avatarId}/` and any number of `lipsync`
 * jobs read. Frames are stored once as a video already ordered forward then backward, so a lipsync
 * of any length loops over it without a jump; per-frame data (crop boxes, VAE latents, blend masks)
 * is stored for the forward frames only and indexed with `sourceFrame()`.
 */
export const BUNDLE_FORMAT = 1;
export const CROP_SIZE = 256;
export const LATENT_SHAPE = [8, 32, 32] as const; // masked-crop moments mean (4) + reference-crop mean (4), scaled
export const LATENT_SIZE = LATENT_SHAPE[0] * LATENT_SHAPE[1] * LATENT_SHAPE[2];
export const MASK_SIZE = CROP_SIZE * CROP_SIZE;
/**
 * How crops become latents and masks. A bundle made by another version is rebuilt from its source.
 *  1: square crops around MuseTalk's rectangle, resized with sharp's Lanczos-3; the masked crop's
 *     lower half mid-grey (0 after normalising);
 *  2: MuseTalk's rectangle itself, stretched to the crop and back, resized as OpenCV's LANCZOS4;
 *     the masked half black (-1), as MuseTalk masks it before normalising, in training and
 *     inference alike;
 *  3: the rectangle from 68 landmarks (face-api's network) rather than estimated from BlazeFace's
 *     six keypoints; the blend mask from the landmarks (MuseTalk's "jaw" mode) rather than a
 *     fixed feathered rectangle.
 */
export const PREPROCESSING_VERSION = 3;

/** Everything that changes the bundle's content: a bundle made with other parameters is rebuilt, never reused. */
export interface BundleParams {
  fps: number;
  bboxShift: number;
  /** The MuseTalk model set's identity (its metadata version / checksum): new VAE weights mean new latents. */
  modelVersion: string;
  detector: string;
  /** PREPROCESSING_VERSION when it was made; absent in bundles from before versions were kept (1). */
  preprocessing: number;
}

export interface BundleManifest {
  format: number;
  avatarId: string;
  /** Where the frames came from, so a bundle made for older weights can be rebuilt from it. */
  source: string;
  params: BundleParams;
  /** Forward frames; the frames video holds 2 x frameCount - 2 (forward, then backward without repeating the ends), or 1 for a still. */
  frameCount: number;
  width: number;
  height: number;
  /** Crop box per forward frame: [x, y, width, height] in source pixels (a square [x, y, size] before preprocessing 2). */
  boxes: Array<[number, number, number, number]>;
  files: { frames: string; latents: string; masks: string };
  /** SHA-1 of the latents and masks files, to notice a corrupt bundle before using it. */
  checksums: { latents: string; masks: string };
  createdAt: string;
}

export function bundlePrefix(avatarId: string): string {
  return `avatars/${avatarId}`;
}

/** The keys of a bundle's data files. */
function bundleFiles(avatarId: string): BundleManifest['files'] {
  const prefix = bundlePrefix(avatarId);
  return { frames: `${prefix}/frames.mp4`, latents: `${prefix}/latents.f32`, masks: `${prefix}/masks.u8` };
}

export function sameParams(a: BundleParams, b: BundleParams): boolean {
  return a.fps === b.fps && a.bboxShift === b.bboxShift && a.modelVersion === b.modelVersion && a.detector === b.detector
    && (a.preprocessing ?? 1) === (b.preprocessing ?? 1);
}

/** Frames in the looping video: forward then backward, the turning frames not repeated. */
export function loopLength(frameCount: number): number {
  return frameCount <= 1 ? 1 : 2 * frameCount - 2;
}

/** Which forward frame the looping video shows at output frame `i`. */
export function sourceFrame(i: number, frameCount: number): number {
  const loop = loopLength(frameCount);
  const k = i % loop;
  return k < frameCount ? k : loop - k;
}

const sha1 = (data: Buffer) => createHash('sha1').update(data).digest('hex');

export interface BundleData {
  latents: Float32Array;
  masks: Uint8Array;
}

/** Uploads the per-frame data and then the manifest: a manifest only ever points at complete files. */
export async function writeBundle(
  storage: ObjectStorage,
  scratchDir: string,
  manifest: Omit<BundleManifest, 'files' | 'checksums' | 'format' | 'createdAt'>,
  data: BundleData,
  framesFile: string,
  signal?: AbortSignal,
): Promise<BundleManifest> {
  if (data.latents.length !== manifest.frameCount * LATENT_SIZE) throw new Error('latents do not match the frame count');
  if (data.masks.length !== manifest.frameCount * MASK_SIZE) throw new Error('masks do not match the frame count');
  const prefix = bundlePrefix(manifest.avatarId);
  const latents = Buffer.from(data.latents.buffer, data.latents.byteOffset, data.latents.byteLength);
  const masks = Buffer.from(data.masks.buffer, data.masks.byteOffset, data.masks.byteLength);
  const files = bundleFiles(manifest.avatarId);
  await writeFile(path.join(scratchDir, 'latents.f32'), latents);
  await writeFile(path.join(scratchDir, 'masks.u8'), masks);
  await storage.putFile(files.frames, framesFile, { contentType: 'video/mp4', signal });
  await storage.putFile(files.latents, path.join(scratchDir, 'latents.f32'), { signal });
  await storage.putFile(files.masks, path.join(scratchDir, 'masks.u8'), { signal });
  const full: BundleManifest = { format: BUNDLE_FORMAT, ...manifest, files, checksums: { latents: sha1(latents), masks: sha1(masks) }, createdAt: new Date().toISOString() };
  const manifestFile = path.join(scratchDir, 'manifest.json');
  await writeFile(manifestFile, JSON.stringify(full, null, 1));
  await storage.putFile(`${prefix}/manifest.json`, manifestFile, { contentType: 'application/json', signal });
  return full;
}

/** The manifest, or undefined when no bundle exists; a manifest that is not one fails as `avatar_corrupt`. */
export async function readManifest(storage: ObjectStorage, avatarId: string, scratchDir: string, signal?: AbortSignal): Promise<BundleManifest | undefined> {
  const key = `${bundlePrefix(avatarId)}/manifest.json`;
  const listed = await storage.list(key);
  if (!listed.some((o) => o.key === key)) return undefined;
  const file = path.join(scratchDir, `manifest-${avatarId}.json`);
  await storage.getFile(key, file, { signal });
  let manifest: BundleManifest;
  try {
    manifest = JSON.parse(await readFile(file, 'utf8')) as BundleManifest;
  } catch {
    throw new PipelineError('avatar_corrupt', `avatar ${avatarId}: manifest.json is not valid JSON`);
  }
  const ok = manifest && manifest.format === BUNDLE_FORMAT && manifest.avatarId === avatarId && Number.isInteger(manifest.frameCount)
    && manifest.frameCount > 0 && Array.isArray(manifest.boxes) && manifest.boxes.length === manifest.frameCount && manifest.checksums
    && ownFiles(manifest.files, avatarId);
  if (!ok) throw new PipelineError('avatar_corrupt', `avatar ${avatarId}: manifest.json is not a format-${BUNDLE_FORMAT} avatar bundle`);
  return manifest;
}

/**
 * Whether the manifest's files are the ones writeBundle writes: a manifest is read from storage, so
 * one that points elsewhere (another avatar, `..`) is a broken bundle, not a path to follow.
 */
function ownFiles(files: BundleManifest['files'] | undefined, avatarId: string): boolean {
  const own = bundleFiles(avatarId);
  return !!files && files.frames === own.frames && files.latents === own.latents && files.masks === own.masks;
}

/** Downloads and checks the per-frame data; a size or checksum mismatch is `avatar_corrupt` (prepare the avatar again). */
export async function readBundleData(storage: ObjectStorage, manifest: BundleManifest, scratchDir: string, signal?: AbortSignal): Promise<BundleData & { framesFile: string }> {
  const local = (name: string) => path.join(scratchDir, `${manifest.avatarId}-${name}`);
  await storage.getFile(manifest.files.latents, local('latents.f32'), { signal });
  await storage.getFile(manifest.files.masks, local('masks.u8'), { signal });
  await storage.getFile(manifest.files.frames, local('frames.mp4'), { signal });
  const latents = await readFile(local('latents.f32'));
  const masks = await readFile(local('masks.u8'));
  if (latents.length !== manifest.frameCount * LATENT_SIZE * 4 || sha1(latents) !== manifest.checksums.latents) {
    throw new PipelineError('avatar_corrupt', `avatar ${manifest.avatarId}: latents do not match the manifest; prepare the avatar again`);
  }
  if (masks.length !== manifest.frameCount * MASK_SIZE || sha1(masks) !== manifest.checksums.masks) {
    throw new PipelineError('avatar_corrupt', `avatar ${manifest.avatarId}: masks do not match the manifest; prepare the avatar again`);
  }
  const aligned = new Float32Array(latents.length / 4);
  Buffer.from(aligned.buffer).set(latents);
  return { latents: aligned, masks: new Uint8Array(masks.buffer, masks.byteOffset, masks.length), framesFile: local('frames.mp4') };
}
