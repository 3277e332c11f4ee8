import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync, appendFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, test } from 'node:test';
import { PipelineError } from '../src/pipelines/pipeline';
import {
  LATENT_SIZE, MASK_SIZE, loopLength, readBundleData, readManifest, sameParams, sourceFrame, writeBundle,
} from '../src/pipelines/avatar-prepare/bundle';
import { featheredMask, fromNchw, pasteFace, toNchw } from '../src/pipelines/shared/frames';
import { createStorage } from '../src/storage/create-storage';

function gradient(w: number, h: number): Uint8Array {
  const rgb = new Uint8Array(w * h * 3);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) rgb.set([x % 256, y % 256, (x + y) % 256], (y * w + x) * 3);
  return rgb;
}

describe('frame pixels', () => {
  test('NCHW in [-1, 1] and back is lossless to within a level; the masked variant zeroes the lower half', () => {
    const rgb = gradient(16, 16).subarray(0, 16 * 16 * 3);
    const t = new Float32Array(3 * 256 * 2);
    toNchw(rgb, 16, t, 256 * 3);
    assert.equal(t[256 * 3], rgb[0]! / 127.5 - 1);
    const back = fromNchw(t, 16, 256 * 3);
    assert.ok(back.every((v, i) => Math.abs(v - rgb[i]!) <= 1));
    const masked = new Float32Array(3 * 256);
    toNchw(new Uint8Array(16 * 16 * 3).fill(255), 16, masked, 0, true);
    assert.equal(masked[0], 1);
    assert.equal(masked[8 * 16], 0, 'first pixel of the lower half');
    assert.equal(masked[2 * 256 + 255], 0);
  });

  test('the feathered mask keeps the top, generates the lower face, and ramps smoothly between', () => {
    const m = featheredMask(256, 24);
    const at = (x: number, y: number) => m[y * 256 + x]!;
    assert.equal(at(128, 10), 0);
    assert.equal(at(128, 200), 255);
    for (let y = 100; y < 150; y++) assert.ok(at(128, y + 1) >= at(128, y), 'monotonic ramp');
    assert.equal(at(0, 200), 0, 'the sides fade out too');
  });

  test('paste-back: full mask replaces the box, empty mask changes nothing, pixels outside the box never change', () => {
    const frame = new Uint8Array(100 * 80 * 3).fill(10);
    const face = new Uint8Array(32 * 32 * 3).fill(200);
    pasteFace(frame, 100, 80, face, new Uint8Array(32 * 32).fill(255), 32, { x: 20, y: 10, size: 40 });
    assert.equal(frame[(30 * 100 + 40) * 3], 200);
    assert.equal(frame[(5 * 100 + 40) * 3], 10);
    assert.equal(frame[(30 * 100 + 70) * 3], 10);
    const before = Buffer.from(frame);
    pasteFace(frame, 100, 80, new Uint8Array(32 * 32 * 3), new Uint8Array(32 * 32), 32, { x: 0, y: 0, size: 100 });
    assert.deepEqual(Buffer.from(frame), before);
  });
});

describe('avatar bundle', () => {
  test('frames loop forward then backward without repeating the turning frames', () => {
    assert.deepEqual(Array.from({ length: 10 }, (_, i) => sourceFrame(i, 4)), [0, 1, 2, 3, 2, 1, 0, 1, 2, 3]);
    assert.equal(loopLength(4), 6);
    assert.deepEqual(Array.from({ length: 3 }, (_, i) => sourceFrame(i, 1)), [0, 0, 0]);
  });

  test('written, read back, and checked; changed parameters or a damaged file are noticed', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'bundle-'));
    const storage = createStorage({ driver: 'local', local: { root: path.join(dir, 'bucket') } });
    const frames = path.join(dir, 'frames.mp4');
    writeFileSync(frames, 'not really a video');
    const params = { fps: 25, bboxShift: 0, modelVersion: 'dev-1', detector: 'blazeface-front-128' };
    const latents = Float32Array.from({ length: 3 * LATENT_SIZE }, (_, i) => i / 7);
    const masks = Uint8Array.from({ length: 3 * MASK_SIZE }, (_, i) => i % 251);
    assert.equal(await readManifest(storage, 'ava-1', dir), undefined, 'no bundle yet');
    await writeBundle(storage, dir, { avatarId: 'ava-1', source: 'uploads/face.mp4', params, frameCount: 3, width: 640, height: 360, boxes: [[1, 2, 200], [2, 2, 200], [3, 2, 200]] }, { latents, masks }, frames);
    const manifest = (await readManifest(storage, 'ava-1', dir))!;
    assert.equal(manifest.frameCount, 3);
    assert.ok(sameParams(manifest.params, params));
    assert.ok(!sameParams(manifest.params, { ...params, modelVersion: 'real-1' }));
    const data = await readBundleData(storage, manifest, mkdtempSync(path.join(dir, 'r-')));
    assert.deepEqual(data.latents, latents);
    assert.deepEqual(Buffer.from(data.masks), Buffer.from(masks));
    appendFileSync(path.join(dir, 'bucket', 'avatars/ava-1/latents.f32'), Buffer.alloc(4));
    await assert.rejects(readBundleData(storage, manifest, mkdtempSync(path.join(dir, 'r-'))), (e: unknown) => e instanceof PipelineError && e.code === 'avatar_corrupt');
    writeFileSync(path.join(dir, 'bucket', 'avatars/ava-1/manifest.json'), '{"format": 1}');
    await assert.rejects(readManifest(storage, 'ava-1', dir), /not a format-1 avatar bundle/);
  });
});
