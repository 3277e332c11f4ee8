import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync, appendFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, test } from 'node:test';
import { PipelineError } from '../src/pipelines/pipeline';
import {
  LATENT_SIZE, MASK_SIZE, PREPROCESSING_VERSION, loopLength, readBundleData, readManifest, sameParams, sourceFrame, writeBundle,
} from '../src/pipelines/avatar-prepare/bundle';
import { drawFace, facePlanes, firstMaskedRow, nchwToYuv, patchArea, patchPlanes, toNchw } from '../src/pipelines/shared/frames';
import { binaries, frameBytes } from '../src/media/ffmpeg';
import { createStorage } from '../src/storage/create-storage';

function gradient(w: number, h: number): Uint8Array {
  const rgb = new Uint8Array(w * h * 3);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) rgb.set([x % 256, y % 256, (x + y) % 256], (y * w + x) * 3);
  return rgb;
}

describe('frame pixels', () => {
  test('rgb24 into NCHW in [-1, 1]; the masked variant makes the lower half black (-1), as MuseTalk does', () => {
    const rgb = gradient(16, 16);
    const t = new Float32Array(3 * 256 * 2);
    toNchw(rgb, 16, t, 256 * 3);
    assert.equal(t[256 * 3], rgb[0]! / 127.5 - 1);
    assert.equal(t[256 * 3 + 2 * 256 + 17], Math.fround(rgb[17 * 3 + 2]! / 127.5 - 1), 'channel planes');
    const masked = new Float32Array(3 * 256);
    toNchw(new Uint8Array(16 * 16 * 3).fill(255), 16, masked, 0, true);
    assert.equal(masked[0], 1);
    assert.equal(masked[8 * 16 - 1], 1, 'last pixel of the upper half');
    assert.equal(masked[8 * 16], -1, 'first pixel of the lower half');
    assert.equal(masked[2 * 256 + 255], -1);
  });

  test('NCHW to YUV matches ffmpeg\'s own rgb24 -> yuv420p conversion, chroma at half resolution too (luma within a level, chroma within two)', () => {
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
      for (let i = 0; i < half * half; i++) assert.ok(Math.abs(plane[i]! - ref[start + i]!) <= 2, `chroma at ${i % half},${Math.floor(i / half)}: ${plane[i]} vs ${ref[start + i]}`);
    }
  });

  test('a face drawn into a patch: colour and alpha where the box is, transparent elsewhere, chroma at half resolution', () => {
    const area = { x: 10, y: 20, width: 60, height: 40 };
    const patch = patchPlanes(area);
    patch.a.fill(99); // whatever a reused buffer held before
    const face = facePlanes(32);
    face.y.fill(200);
    face.u.fill(50);
    face.v.fill(60);
    const mask = new Uint8Array(32 * 32).fill(255, 16 * 32); // the lower half of the crop
    drawFace(patch, face, mask, { x: 20, y: 10, width: 40, height: 40 }); // frame pixels; the box's top half lies above the patch
    const at = (plane: Uint8Array, stride: number, x: number, y: number) => plane[y * stride + x]!;
    // Frame (40, 45) is well inside the box's lower half: patch (30, 25).
    assert.deepEqual([at(patch.y, 60, 30, 25), at(patch.a, 60, 30, 25)], [200, 255]);
    assert.deepEqual([at(patch.u, 30, 15, 12), at(patch.v, 30, 15, 12)], [50, 60]);
    assert.equal(at(patch.a, 60, 30, 2), 0, 'frame (40, 22): the box\'s upper half, where the mask is empty');
    assert.equal(at(patch.a, 60, 5, 25), 0, 'frame (15, 45): left of the box');
    assert.equal(at(patch.a, 60, 55, 25), 0, 'frame (65, 45): right of the box');
    const ramp = Array.from({ length: 8 }, (_, k) => at(patch.a, 60, 30, 6 + k)); // across the mask's edge (frame y 26..33)
    assert.ok(ramp.every((v, k) => k === 0 || v >= ramp[k - 1]!) && ramp[0]! < 128 && ramp.at(-1)! === 255, `alpha rises across the mask's edge: ${ramp}`);
  });

  test('the patch area holds the masked part of every box, even-aligned and inside the frame', () => {
    const boxes = [{ x: 101, y: 50, width: 100, height: 100 }, { x: 111, y: 55, width: 100, height: 100 }];
    // Masks start halfway down the 256-row crop: only the lower half of each box is ever drawn.
    assert.deepEqual(patchArea(boxes, [128, 128], 256, 640, 360), { x: 100, y: 100, width: 112, height: 56 });
    assert.deepEqual(patchArea([{ x: 600, y: 300, width: 100, height: 100 }], [0], 256, 640, 360), { x: 600, y: 300, width: 40, height: 60 }, 'clipped to the frame');
    assert.deepEqual(patchArea(boxes, [256, 256], 256, 640, 360), { x: 0, y: 0, width: 2, height: 2 }, 'nothing masked');
    assert.equal(firstMaskedRow(new Uint8Array(256 * 256).fill(1, 116 * 256 + 200, 116 * 256 + 201), 256), 116, 'one pixel is enough');
    assert.equal(firstMaskedRow(new Uint8Array(256 * 256), 256), 256, 'an empty mask: its size');
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
    const params = { fps: 25, bboxShift: 0, modelVersion: 'dev-1', detector: 'blazeface-front-128', preprocessing: PREPROCESSING_VERSION };
    const latents = Float32Array.from({ length: 3 * LATENT_SIZE }, (_, i) => i / 7);
    const masks = Uint8Array.from({ length: 3 * MASK_SIZE }, (_, i) => i % 251);
    assert.equal(await readManifest(storage, 'ava-1', dir), undefined, 'no bundle yet');
    await writeBundle(storage, dir, { avatarId: 'ava-1', source: 'uploads/face.mp4', params, frameCount: 3, width: 640, height: 360, boxes: [[1, 2, 160, 200], [2, 2, 160, 200], [3, 2, 160, 200]] }, { latents, masks }, frames);
    const manifest = (await readManifest(storage, 'ava-1', dir))!;
    assert.equal(manifest.frameCount, 3);
    assert.ok(sameParams(manifest.params, params));
    assert.ok(!sameParams(manifest.params, { ...params, modelVersion: 'real-1' }));
    assert.ok(!sameParams(manifest.params, { ...params, preprocessing: PREPROCESSING_VERSION + 1 }));
    const { preprocessing: _unversioned, ...older } = params;
    assert.ok(!sameParams(older as typeof params, params), 'a bundle from before versions were kept is rebuilt');
    const data = await readBundleData(storage, manifest, mkdtempSync(path.join(dir, 'r-')));
    assert.deepEqual(data.latents, latents);
    assert.deepEqual(Buffer.from(data.masks), Buffer.from(masks));
    appendFileSync(path.join(dir, 'bucket', 'avatars/ava-1/latents.f32'), Buffer.alloc(4));
    await assert.rejects(readBundleData(storage, manifest, mkdtempSync(path.join(dir, 'r-'))), (e: unknown) => e instanceof PipelineError && e.code === 'avatar_corrupt');
    writeFileSync(path.join(dir, 'bucket', 'avatars/ava-1/manifest.json'), '{"format": 1}');
    await assert.rejects(readManifest(storage, 'ava-1', dir), /not a format-1 avatar bundle/);
  });
});
