import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, test } from 'node:test';
import * as ort from 'onnxruntime-node';
import sharp from 'sharp';
import { BLAZEFACE_MODEL_PATH, FaceDetector } from '../src/inference/face-detector';
import { FaceLandmarker, landmarkBox } from '../src/inference/face-landmarks';
import {
  bboxShiftRange,
  cropResize,
  FaceTrackError,
  museTalkRect,
  pickFaces,
  rectCrop,
  trackFaces,
  type FaceObservation,
  type TrackedFace,
} from '../src/pipelines/avatar-prepare/face-track';

/** face-api's 68 landmarks on the astronaut photo (fixtures/face-landmarks), relative to BlazeFace's box there (x, y, ...). */
const TEMPLATE = (() => {
  const reference = JSON.parse(readFileSync(path.resolve(__dirname, '../../test/fixtures/face-landmarks/faceapi-reference.json'), 'utf8')) as {
    cases: Array<{ box: { x: number; y: number; size: number }; landmarks: number[] }>;
  };
  const { box, landmarks } = reference.cases[0]!;
  return landmarks.map((v, i) => (v - (i % 2 === 0 ? box.x : box.y)) / box.size);
})();

/** A face box with BlazeFace-like keypoints and the template's landmarks scaled into the box. */
function face(x: number, y: number, size: number, score = 0.9): FaceObservation {
  const at = (fx: number, fy: number): [number, number] => [x + fx * size, y + fy * size];
  const landmarks = Float32Array.from(TEMPLATE, (v, i) => (i % 2 === 0 ? x : y) + v * size);
  return { x, y, width: size, height: size, score, keypoints: [at(0.3, 0.3), at(0.7, 0.3), at(0.5, 0.6), at(0.5, 0.8), at(0, 0.4), at(1, 0.4)], landmarks };
}

/**
 * 68 landmarks that put MuseTalk's inputs where a test wants them: x extent from point 0 to point
 * 16, the chin (point 8) lowest, points 28-30 on the nose bridge; the rest at the face's centre.
 */
function points(minX: number, maxX: number, chin: number, y28: number, y29: number, y30: number): Float32Array {
  const cx = (minX + maxX) / 2;
  const out = new Float32Array(136);
  for (let i = 0; i < 68; i++) out.set([cx, y29], 2 * i);
  out.set([minX, y28], 0);
  out.set([maxX, y28], 32);
  out.set([cx, chin], 16);
  out.set([cx, y28, cx, y29, cx, y30], 56);
  return out;
}

/** Deterministic standard normal noise (Box-Muller over a small LCG). */
function gaussian(seed: number): () => number {
  let s = seed >>> 0;
  const uniform = (): number => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) + 1) / 4294967297;
  return () => Math.sqrt(-2 * Math.log(uniform())) * Math.cos(2 * Math.PI * uniform());
}

const truth = (t: number): FaceObservation => face(100 + 3 * t, 80 + 0.5 * t, 150 + 0.2 * t);
const rms = (values: number[]): number => Math.sqrt(values.reduce((s, v) => s + v * v, 0) / values.length);

function expectTrackError(fn: () => unknown, code: string, first: number, last: number, text: RegExp): void {
  assert.throws(fn, (error: unknown) => {
    assert.ok(error instanceof FaceTrackError, String(error));
    assert.equal(error.code, code);
    assert.deepEqual([error.firstFrame, error.lastFrame], [first, last]);
    assert.match(error.message, text);
    return true;
  });
}

describe('face track over a video', () => {
  test('smoothing cuts detector jitter and follows a moving face without lag, ends included', () => {
    // Six noisy runs of a face moving 3 px per frame: 3 px noise on position and landmarks.
    const n = 120;
    const raw: number[] = [], smooth: number[] = [], ends: number[] = [], nose: number[] = [];
    let jitterRaw = 0, jitterSmooth = 0;
    for (let seed = 1; seed <= 6; seed++) {
      const noise = gaussian(seed);
      const noisy = Array.from({ length: n }, (_, t) => {
        const f = truth(t);
        return [{ ...f, x: f.x + 3 * noise(), y: f.y + 3 * noise(), width: f.width + 2 * noise(), landmarks: f.landmarks.map((v) => v + 3 * noise()) }];
      });
      const track = trackFaces(noisy);
      assert.equal(track.length, n);
      assert.ok(track.every((f) => f.detected));
      const r = noisy.map((faces, t) => faces[0]!.x - truth(t).x);
      const e = track.map((f, t) => f.x - truth(t).x);
      raw.push(...r);
      smooth.push(...e);
      ends.push(...e.slice(0, 3), ...e.slice(-3));
      nose.push(...track.map((f, t) => f.landmarks[2 * 30 + 1]! - truth(t).landmarks[2 * 30 + 1]!));
      // Jitter: the frame-to-frame change around the true motion.
      const jitter = (xs: number[]): number => rms(xs.slice(1).map((v, i) => v - xs[i]!));
      jitterRaw += jitter(r) / 6;
      jitterSmooth += jitter(e) / 6;
    }
    assert.ok(rms(smooth) < rms(raw) / 2, `rms ${rms(smooth).toFixed(2)} vs raw ${rms(raw).toFixed(2)}`);
    assert.ok(jitterSmooth < jitterRaw / 5, `jitter ${jitterSmooth.toFixed(2)} vs ${jitterRaw.toFixed(2)}`);
    assert.ok(rms(nose) < 1.5, `nose y rms ${rms(nose).toFixed(2)}`);
    // No lag: no bias while the face moves, and the one-sided first and last frames still beat raw.
    const bias = smooth.reduce((s, v) => s + v, 0) / smooth.length;
    assert.ok(Math.abs(bias) < 0.4, `bias ${bias.toFixed(2)}`);
    assert.ok(rms(ends) < rms(raw), `ends rms ${rms(ends).toFixed(2)} vs raw ${rms(raw).toFixed(2)}`);
  });

  test('a clean moving face passes through smoothing unchanged (the local line fit keeps steady motion)', () => {
    const track = trackFaces(Array.from({ length: 30 }, (_, t) => [truth(t)]));
    track.forEach((f, t) => {
      const e = truth(t);
      assert.ok(Math.abs(f.x - e.x) < 1e-6 && Math.abs(f.height - e.height) < 1e-6 && Math.abs(f.landmarks[2 * 45]! - e.landmarks[2 * 45]!) < 1e-3, `frame ${t}`);
    });
  });

  test('gaps up to maxGapFrames are interpolated; at the ends the nearest face is held', () => {
    const frames: FaceObservation[][] = Array.from({ length: 40 }, (_, t) => [truth(t)]);
    for (const t of [0, 1, 2, 10, 11, 12, 13, 14, 39]) frames[t] = [];
    const track = trackFaces(frames, { smoothSigma: 0 });
    for (let t = 10; t <= 14; t++) {
      assert.equal(track[t]!.detected, false);
      assert.ok(Math.abs(track[t]!.x - truth(t).x) < 1e-9, `frame ${t} x ${track[t]!.x}`);
      assert.ok(Math.abs(track[t]!.landmarks[2 * 57 + 1]! - truth(t).landmarks[2 * 57 + 1]!) < 1e-3);
    }
    for (const t of [0, 1, 2]) assert.equal(track[t]!.x, truth(3).x);
    assert.equal(track[39]!.x, truth(38).x);
    assert.equal(track[9]!.detected, true);
    assert.equal(track.filter((f) => !f.detected).length, 9);
  });

  test('a longer gap, or no face at all, is a FaceTrackError naming the frames', () => {
    const frames: FaceObservation[][] = Array.from({ length: 40 }, (_, t) => [truth(t)]);
    for (let t = 10; t <= 15; t++) frames[t] = [];
    expectTrackError(() => trackFaces(frames), 'face_lost', 10, 15, /frames 10-15 \(6 frames; at most 5/);
    assert.doesNotThrow(() => trackFaces(frames, { maxGapFrames: 6 }));
    for (let t = 30; t < 40; t++) frames[t] = [];
    expectTrackError(() => trackFaces(frames, { maxGapFrames: 6 }), 'face_lost', 30, 39, /frames 30-39/);
    expectTrackError(() => trackFaces(Array.from({ length: 8 }, () => [])), 'no_face', 0, 7, /no face detected in any of the 8 frames \(frames 0-7\)/);
    expectTrackError(() => trackFaces([]), 'no_face', 0, 0, /no frames/);
  });

  test('follows the same face when a better scoring one appears elsewhere', () => {
    const main = (t: number): FaceObservation => face(100 + t, 100, 120, 0.8);
    const frames = [[main(0)], [face(600, 100, 120, 0.99), main(1)], [main(2), face(600, 100, 120, 0.99)]];
    assert.deepEqual(pickFaces(frames).map((f) => f?.x), [100, 101, 102]);
    assert.equal(pickFaces([[face(600, 100, 120, 0.7), face(100, 100, 120, 0.95)]])[0]!.x, 100);
  });

  test("museTalkRect follows MuseTalk's get_landmark_and_bbox and bbox_shift", () => {
    // Landmarks x 100..200, point 29 at y 150, chin at 200 -> top 100; the detector's box elsewhere.
    const geometry = (lm: Float32Array) => ({ x: 90, y: 80, width: 120, height: 120, landmarks: lm });
    const f = geometry(points(100.6, 200.9, 200.4, 140, 150.7, 160));
    assert.deepEqual(museTalkRect(f, 1280, 720, { extraMargin: 0 }), { x1: 100, y1: 100, x2: 200, y2: 200 });
    assert.deepEqual(museTalkRect(f, 1280, 720), { x1: 100, y1: 100, x2: 200, y2: 210 }, 'v1.5 extra_margin 10 below the chin');
    for (const shift of [-10, -3, 4, 10]) {
      const r = museTalkRect(f, 1280, 720, { bboxShift: shift, extraMargin: 0 });
      // Positive = down: the top moves twice the shift, the chin stays, the middle row moves by the shift.
      assert.deepEqual(r, { x1: 100, y1: 100 + 2 * shift, x2: 200, y2: 200 });
      assert.equal((r.y1 + r.y2) / 2, 150 + shift);
    }
    assert.deepEqual(museTalkRect(geometry(points(100, 200, 120, 40, 60, 70)), 1280, 720, { bboxShift: -30 }).y1, 0, 'the top stops at 0');
    assert.deepEqual(museTalkRect(f, 1280, 720, { bboxShift: 60, extraMargin: 0 }), { x1: 90, y1: 80, x2: 210, y2: 200 }, 'past the chin: the detector box');
    assert.equal(museTalkRect(geometry(points(100, 300, 715, 600, 620, 640)), 1280, 720).y2, 720, 'the margin stays in the frame');
    // MuseTalk's suggested range: -(y30 - y29) ~ (y29 - y28) on truncated landmarks, averaged, truncated.
    assert.deepEqual(bboxShiftRange([f, f]), { min: -10, max: 10 });
    assert.deepEqual(bboxShiftRange([f, geometry(points(100, 200, 200, 141, 155, 161))]), { min: -8, max: 12 });
  });

  test('crop boxes are MuseTalk\'s rectangles themselves, integer and inside the frame', () => {
    const f = face(500, 200, 200);
    const rect = museTalkRect(f, 1280, 720);
    assert.deepEqual(rectCrop(rect, 1280, 720), { x: rect.x1, y: rect.y1, width: rect.x2 - rect.x1, height: rect.y2 - rect.y1 });
    assert.ok(rect.y2 - rect.y1 > rect.x2 - rect.x1, 'taller than wide, and kept so: stretched to the crop, not squared');
    assert.deepEqual(rectCrop({ x1: 1270, y1: 700, x2: 1300, y2: 760 }, 1280, 720), { x: 1270, y: 700, width: 10, height: 20 }, 'clipped to the frame');
    assert.deepEqual(rectCrop({ x1: 1290, y1: 10, x2: 1290, y2: 10 }, 1280, 720), { x: 1279, y: 10, width: 1, height: 1 }, 'never empty');
    const random = gaussian(3);
    const faces: TrackedFace[] = [];
    for (let i = 0; i < 500; i++) {
      const size = 20 + Math.abs(random()) * 400;
      faces.push({ ...face(random() * 700 + 300, random() * 400 + 200, size), detected: true });
    }
    for (const [w, h] of [[1280, 720], [720, 1280], [256, 200]] as const) {
      for (const b of faces.map((f) => rectCrop(museTalkRect(f, w, h, { bboxShift: 5 }), w, h))) {
        assert.ok([b.x, b.y, b.width, b.height].every(Number.isInteger), JSON.stringify(b));
        assert.ok(b.width >= 1 && b.height >= 1 && b.x >= 0 && b.y >= 0 && b.x + b.width <= w && b.y + b.height <= h, `${JSON.stringify(b)} in ${w}x${h}`);
      }
    }
  });

  test('cropResize cuts the box and stretches it to 256x256 rgb24', async () => {
    const w = 320, h = 240;
    const rgb = new Uint8Array(w * h * 3);
    for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) rgb.set([x % 256, y, 77], (y * w + x) * 3);
    const out = await cropResize(rgb, w, h, { x: 50, y: 20, width: 128, height: 128 });
    assert.equal(out.length, 256 * 256 * 3);
    const at = (x: number, y: number): number[] => [...out.subarray((y * 256 + x) * 3, (y * 256 + x) * 3 + 3)];
    // 2x upscale: output pixel (i, j) samples source (50 + i/2, 20 + j/2).
    for (const [x, y] of [[0, 0], [100, 30], [255, 255]] as const) {
      const [r, g, b] = at(x, y);
      assert.ok(Math.abs(r! - (50 + (x + 0.5) / 2 - 0.5)) <= 1.5 && Math.abs(g! - (20 + (y + 0.5) / 2 - 0.5)) <= 1.5 && b === 77, `(${x},${y}) = ${at(x, y)}`);
    }
    // A rectangle 64 wide and 128 tall: stretched 4x across and 2x down, as MuseTalk stretches its crops.
    const tall = await cropResize(rgb, w, h, { x: 50, y: 20, width: 64, height: 128 });
    const tallAt = (x: number, y: number): number[] => [...tall.subarray((y * 256 + x) * 3, (y * 256 + x) * 3 + 3)];
    for (const [x, y] of [[0, 0], [128, 100], [255, 255]] as const) {
      const [r, g] = tallAt(x, y);
      assert.ok(Math.abs(r! - (50 + (x + 0.5) / 4 - 0.5)) <= 1.5 && Math.abs(g! - (20 + (y + 0.5) / 2 - 0.5)) <= 1.5, `(${x},${y}) = ${tallAt(x, y)}`);
    }
    assert.equal((await cropResize(rgb, w, h, { x: 0, y: 0, width: 240, height: 240 }, 64)).length, 64 * 64 * 3);
    assert.throws(() => cropResize(rgb, w, h, { x: 100, y: 0, width: 240, height: 240 }), RangeError);
  });

  test('on the real photo: the crop holds the face with the nose bridge on its middle row', async () => {
    const session = await ort.InferenceSession.create(BLAZEFACE_MODEL_PATH, { executionProviders: ['cpu'], logSeverityLevel: 3 });
    const landmarker = new FaceLandmarker(await ort.InferenceSession.create(FaceLandmarker.modelBytes(), { executionProviders: ['cpu'], logSeverityLevel: 3 }));
    const { data, info } = await sharp(path.resolve(__dirname, '../../test/fixtures/faces/astronaut.jpg')).removeAlpha().raw().toBuffer({ resolveWithObject: true });
    const rgb = new Uint8Array(data.buffer, data.byteOffset, data.length);
    const faces: FaceObservation[] = [];
    for (const found of await new FaceDetector(session).detect(rgb, info.width, info.height)) {
      faces.push({ ...found, landmarks: await landmarker.detect(rgb, info.width, info.height, landmarkBox(found)) });
    }
    const track = trackFaces([faces, faces, faces]);
    const box = rectCrop(museTalkRect(track[0]!, info.width, info.height), info.width, info.height);
    assert.ok(box);
    // Face (README): cheeks x 177-272, chin y 178; eyes y ~104, nose tip y 125.
    // The sides on the jaw line's extent, within 5 px of the hand annotation.
    assert.ok(Math.abs(box.x - 177) <= 5 && Math.abs(box.x + box.width - 272) <= 5 && box.y < 95 && box.y + box.height >= 178, JSON.stringify(box));
    const middle = box.y + box.height / 2;
    assert.ok(middle > 110 && middle < 128, `middle row ${middle}: between the eyes and the nose tip`);
    assert.ok(bboxShiftRange(track).max >= 4 && bboxShiftRange(track).max <= 10, JSON.stringify(bboxShiftRange(track)));
    assert.equal((await cropResize(rgb, info.width, info.height, box)).length, 256 * 256 * 3);
  });
});
