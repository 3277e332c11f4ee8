import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync, appendFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, test } from 'node:test';
import { PipelineError } from '../src/pipelines/pipeline';
import {
  LATENT_SIZE, MASK_SIZE, loopLength, readBundleData, readManifest, sameParams, sourceFrame, writeBundle,
} from '../src/pipelines/avatar-prepare/bundle';
import { facePlanes, featheredMask, nchwToYuv, pasteFace, toNchw } from '../src/pipelines/shared/frames';
import { binaries, frameBytes } from '../src/media/ffmpeg';
import { createStorage } from '../src/storage/create-storage';

function gradient(w: number, h: number): Uint8Array {
  const rgb = new Uint8Array(w * h * 3);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) rgb.set([x % 256, y % 256, (x + y) % 256], (y * w + x) * 3);
  return rgb;
}

describe('frame pixels', () => {
  test('rgb24 into NCHW in [-1, 1]; the masked variant zeroes the lower half', () => {
    const rgb = gradient(16, 16);
    const t = new Float32Array(3 * 256 * 2);
    toNchw(rgb, 16, t, 256 * 3);
    assert.equal(t[256 * 3], rgb[0]! / 127.5 - 1);
    assert.equal(t[256 * 3 + 2 * 256 + 17], Math.fround(rgb[17 * 3 + 2]! / 127.5 - 1), 'channel planes');
    const masked = new Float32Array(3 * 256);
    toNchw(new Uint8Array(16 * 16 * 3).fill(255), 16, masked, 0, true);
    assert.equal(masked[0], 1);
    assert.equal(masked[8 * 16], 0, 'first pixel of the lower half');
    assert.equal(masked[2 * 256 + 255], 0);
  });

  test('NCHW to YUV matches ffmpeg\'s own rgb24 -> yuv420p conversion (luma within a level, chroma within two)', () => {
    const size = 16;
    // Steep but smooth ramps: swscale subsamples chroma with a filter, not a box, so noise would differ.
    const rgb = gradient(size, size).map((v, i) => (v * [15, 13, 7][i % 3]!) % 256);
    const dir = mkdtempSync(path.join(os.tmpdir(), 'yuv-'));
    writeFileSync(path.join(dir, 'in.rgb'), rgb);
    execFileSync(binaries().ffmpeg, ['-loglevel', 'error', '-f', 'rawvideo', '-pix_fmt', 'rgb24', '-s', `${size}x${size}`, '-i', path.join(dir, 'in.rgb'),
      '-pix_fmt', 'yuv420p', '-f', 'rawvideo', path.join(dir, 'out.yuv')]);
    const ref = execFileSync('cat', [path.join(dir, 'out.yuv')]);
    assert.equal(ref.length, frameBytes(size, size, 'yuv420p'));
    const t = new Float32Array(3 * size * size);
    toNchw(rgb, size, t);
    const yuv = nchwToYuv(t, 0, facePlanes(size));
    for (let i = 0; i < size * size; i++) assert.ok(Math.abs(yuv.y[i]! - ref[i]!) <= 1, `Y at ${i}: ${yuv.y[i]} vs ${ref[i]}`);
    const half = size / 2;
    for (const [plane, start] of [[yuv.u, size * size], [yuv.v, size * size + half * half]] as const) {
      for (let cy = 0; cy < half; cy++) for (let cx = 0; cx < half; cx++) {
        const at = (x: number, y: number) => plane[y * size + x]!;
        const mean = (at(2 * cx, 2 * cy) + at(2 * cx + 1, 2 * cy) + at(2 * cx, 2 * cy + 1) + at(2 * cx + 1, 2 * cy + 1)) / 4;
        assert.ok(Math.abs(mean - ref[start + cy * half + cx]!) <= 2, `chroma at ${cx},${cy}`);
      }
    }
  });

  test('the feathered mask keeps the top, generates the lower face, and ramps smoothly between', () => {
    const m = featheredMask(256, 24);
    const at = (x: number, y: number) => m[y * 256 + x]!;
    assert.equal(at(128, 10), 0);
    assert.equal(at(128, 200), 255);
    for (let y = 100; y < 150; y++) assert.ok(at(128, y + 1) >= at(128, y), 'monotonic ramp');
    assert.equal(at(0, 200), 0, 'the sides fade out too');
  });

  test('paste-back into yuv420p: full mask replaces the box in all three planes, empty mask changes nothing, pixels outside the box never change', () => {
    const [w, h] = [100, 80];
    const frame = new Uint8Array(frameBytes(w, h, 'yuv420p')).fill(128).fill(10, 0, w * h);
    const face = facePlanes(32);
    face.y.fill(200);
    face.u.fill(50);
    face.v.fill(60);
    pasteFace(frame, w, h, face, new Uint8Array(32 * 32).fill(255), { x: 20, y: 10, size: 40 });
    const u = (x: number, y: number) => frame[w * h + y * (w / 2) + x];
    const v = (x: number, y: number) => frame[w * h + (w / 2) * (h / 2) + y * (w / 2) + x];
    assert.equal(frame[30 * w + 40], 200);
    assert.equal(u(20, 15), 50);
    assert.equal(v(20, 15), 60);
    assert.equal(frame[5 * w + 40], 10, 'above the box');
    assert.equal(frame[30 * w + 70], 10, 'right of the box');
    assert.equal(u(35, 15), 128);
    assert.equal(v(20, 2), 128);
    const before = Buffer.from(frame);
    pasteFace(frame, w, h, facePlanes(32), new Uint8Array(32 * 32), { x: 0, y: 0, size: 100 });
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
