import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { before, describe, test } from 'node:test';
import * as ort from 'onnxruntime-node';
import sharp from 'sharp';
import { BLAZEFACE_MODEL_PATH, FaceDetector, scaleFaceBox, type FaceBox } from '../src/inference/face-detector';

const FIXTURE = path.resolve(__dirname, '../../test/fixtures/faces/astronaut.jpg');

async function rgbOf(image: sharp.Sharp): Promise<{ rgb: Uint8Array; width: number; height: number }> {
  // removeAlpha: composites and some decoders hand back RGBA, which would read as a skewed frame.
  const { data, info } = await image.removeAlpha().raw().toBuffer({ resolveWithObject: true });
  assert.equal(info.channels, 3);
  return { rgb: new Uint8Array(data.buffer, data.byteOffset, data.length), width: info.width, height: info.height };
}

/** The fixture's head and shoulders (256x256 from (97, 30)) scaled to `size`, on a black canvas. */
async function placed(canvasW: number, canvasH: number, left: number, top: number, size = 720) {
  const head = await sharp(FIXTURE).extract({ left: 97, top: 30, width: 256, height: 256 }).resize(size, size).removeAlpha().raw().toBuffer();
  const canvas = sharp({ create: { width: canvasW, height: canvasH, channels: 3, background: { r: 0, g: 0, b: 0 } } })
    .composite([{ input: head, raw: { width: size, height: size, channels: 3 }, left, top }]);
  return rgbOf(sharp(await canvas.png().toBuffer()));
}

function near(actual: number, expected: number, tolerance: number, what: string): void {
  assert.ok(Math.abs(actual - expected) <= tolerance, `${what}: ${actual.toFixed(1)}, expected ${expected.toFixed(1)} ± ${tolerance.toFixed(1)}`);
}

/** Asserts `face` is `expected` moved by the fixture crop transform, within 8% of the face size. */
function assertMapped(face: FaceBox | undefined, expected: FaceBox, scale: number, dx: number, dy: number): void {
  assert.ok(face, 'a face');
  const tol = 0.08 * expected.width * scale;
  near(face.x, (expected.x - 97) * scale + dx, tol, 'x');
  near(face.y, (expected.y - 30) * scale + dy, tol, 'y');
  near(face.width, expected.width * scale, tol, 'width');
  near(face.height, expected.height * scale, tol, 'height');
  expected.keypoints.forEach(([x, y], k) => {
    near(face.keypoints[k]![0], (x - 97) * scale + dx, tol, `keypoint ${k} x`);
    near(face.keypoints[k]![1], (y - 30) * scale + dy, tol, `keypoint ${k} y`);
  });
}

describe('BlazeFace face detector (real model, CPU)', () => {
  let session: ort.InferenceSession;
  let detector: FaceDetector;
  let reference: FaceBox;

  before(async () => {
    session = await ort.InferenceSession.create(BLAZEFACE_MODEL_PATH, { executionProviders: ['cpu'], logSeverityLevel: 3 });
    detector = new FaceDetector(session);
    // The photo's detection, which the letterbox and concurrency tests compare against.
    const { rgb, width, height } = await rgbOf(sharp(FIXTURE));
    const faces = await detector.detect(rgb, width, height);
    assert.ok(faces[0], 'the photo has a face');
    reference = faces[0];
  });

  test('the bundled model path resolves from the compiled file and has the documented tensors', () => {
    assert.ok(existsSync(BLAZEFACE_MODEL_PATH), BLAZEFACE_MODEL_PATH);
    assert.deepEqual(session.inputNames, ['input:0']);
    assert.deepEqual([...session.outputNames].sort(), ['Identity:0', 'Identity_1:0', 'Identity_2:0', 'Identity_3:0']);
    const shapes = Object.fromEntries(session.outputMetadata.map((m) => [m.name, m.isTensor ? m.shape : []]));
    assert.deepEqual(shapes, { 'Identity:0': [1, 512, 1], 'Identity_1:0': [1, 384, 1], 'Identity_2:0': [1, 512, 16], 'Identity_3:0': [1, 384, 16] });
    const input = session.inputMetadata[0]!;
    assert.ok(input.isTensor && input.type === 'float32');
    assert.deepEqual(input.shape, [1, 128, 128, 3]);
  });

  test('finds the one face in the astronaut photo, box and keypoints on it', async () => {
    const { rgb, width, height } = await rgbOf(sharp(FIXTURE));
    const faces = await detector.detect(rgb, width, height);
    assert.equal(faces.length, 1, JSON.stringify(faces));
    const face = faces[0]!;
    assert.ok(face.score > 0.75, `score ${face.score}`);
    // The face, read off the photo (fixtures/faces/README.md): cheeks x 177-272, hairline y 78, chin y 178.
    near(face.x, 177, 8, 'left');
    near(face.x + face.width, 272, 8, 'right');
    near(face.y, 80, 12, 'top');
    near(face.y + face.height, 177, 8, 'bottom (chin)');
    // Keypoint order and layout: (x, y) pairs, the subject's right eye first (the image's left).
    const truth: Array<[number, number]> = [[204, 101], [246, 107], [222, 125], [221, 145]];
    truth.forEach(([x, y], k) => {
      near(face.keypoints[k]![0], x, 6, `keypoint ${k} x`);
      near(face.keypoints[k]![1], y, 6, `keypoint ${k} y`);
    });
    const [rightTragion, leftTragion] = [face.keypoints[4]!, face.keypoints[5]!];
    assert.ok(rightTragion[0] < face.keypoints[0]![0] && leftTragion[0] > face.keypoints[1]![0], 'tragions outside the eyes');
  });

  test('letterboxes 16:9 and 9:16 frames: boxes map back to where the face was placed', async () => {
    // A 1280x720 frame must give exactly what the same frame padded by hand to 1280x1280 gives
    // (1280 -> 128 is 10x either way and the 280 black rows are the 28 rows of padding), moved back
    // by the padding: this pins the padding and the mapping, not just "somewhere near".
    const cases = [
      { frame: [1280, 720, 280, 0], square: [280, 280], dx: 0, dy: 280 },
      { frame: [720, 1280, 0, 280], square: [280, 280], dx: 280, dy: 0 },
    ] as const;
    for (const { frame, square, dx, dy } of cases) {
      const [w, h, left, top] = frame;
      const framed = await placed(w, h, left, top);
      const padded = await placed(1280, 1280, square[0], square[1]);
      const [face, ...others] = await detector.detect(framed.rgb, framed.width, framed.height);
      const [expected] = await detector.detect(padded.rgb, 1280, 1280);
      assert.ok(face && expected && others.length === 0, `${w}x${h}: one face`);
      assert.ok(face.score > 0.75, `score ${face.score}`);
      near(face.x, expected.x - dx, 0.5, `${w}x${h} x`);
      near(face.y, expected.y - dy, 0.5, `${w}x${h} y`);
      near(face.width, expected.width, 0.5, `${w}x${h} width`);
      near(face.height, expected.height, 0.5, `${w}x${h} height`);
      face.keypoints.forEach(([x, y], k) => {
        near(x, expected.keypoints[k]![0] - dx, 0.5, `keypoint ${k} x`);
        near(y, expected.keypoints[k]![1] - dy, 0.5, `keypoint ${k} y`);
      });
      // And it is the photo's face: the 512x512 detection through the crop and 720/256 scaling.
      // Loosely: the model's box size drifts a few % with the face's size in its input.
      assertMapped(face, reference, 720 / 256, left, top);
    }
    // Moving the picture along the frame moves the box by as much (up to resampling phase).
    const [atLeft] = await detector.detect((await placed(1280, 720, 0, 0)).rgb, 1280, 720);
    const [atRight] = await detector.detect((await placed(1280, 720, 560, 0)).rgb, 1280, 720);
    assert.ok(atLeft && atRight);
    near(atRight.x - atLeft.x, 560, 2, 'shift x');
    near(atRight.y, atLeft.y, 1, 'same y');
  });

  test('finds no face in synthetic test patterns', async () => {
    const W = 1280, H = 720;
    const bars = new Uint8Array(W * H * 3), gradient = new Uint8Array(W * H * 3), noise = new Uint8Array(W * H * 3);
    const colours = [[255, 255, 255], [255, 255, 0], [0, 255, 255], [0, 255, 0], [255, 0, 255], [255, 0, 0], [0, 0, 255], [0, 0, 0]];
    let seed = 12345;
    const random = (): number => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) >>> 24;
    for (let y = 0; y < H; y++) {
      for (let x = 0; x < W; x++) {
        const i = (y * W + x) * 3;
        bars.set(colours[Math.floor((x * 8) / W)]!, i);
        gradient.set([(x * 255) / W, (y * 255) / H, 128], i);
        noise.set([random(), random(), random()], i);
      }
    }
    // Stricter than the default 0.75: the patterns score below 0.2.
    const strict = new FaceDetector(session, { minScore: 0.5 });
    for (const [name, rgb] of [['colour bars', bars], ['gradient', gradient], ['noise', noise]] as const) {
      assert.deepEqual(await strict.detect(rgb, W, H), [], name);
      assert.deepEqual(await detector.detect(rgb, W, H), [], name);
    }
  });

  test('overlapping detect calls on different frames and sizes do not mix up their inputs', async () => {
    const photo = await rgbOf(sharp(FIXTURE));
    const blank = new Uint8Array(640 * 360 * 3).fill(128);
    const [a, b, c] = await Promise.all([
      detector.detect(photo.rgb, photo.width, photo.height),
      detector.detect(blank, 640, 360),
      detector.detect(photo.rgb, photo.width, photo.height),
    ]);
    assert.deepEqual(b, []);
    assert.deepEqual(a, c);
    assert.equal(a.length, 1);
    near(a[0]!.x, reference.x, 0.01, 'same result as alone');
  });

  test('a face found on a half-size copy scales back to the full frame, keypoints too', async () => {
    const half = await rgbOf(sharp(FIXTURE).resize(256, 256));
    const [small] = await detector.detect(half.rgb, 256, 256);
    assert.ok(small);
    const full = scaleFaceBox(small, 2);
    assertMapped(full, reference, 1, 97, 30);
    assert.equal(full.score, small.score);
    assert.deepEqual(full.keypoints[2], [small.keypoints[2]![0] * 2, small.keypoints[2]![1] * 2]);
  });

  test('rejects a buffer that does not match the frame size', async () => {
    await assert.rejects(detector.detect(new Uint8Array(10), 4, 4), RangeError);
    await assert.rejects(detector.detect(new Uint8Array(48), 4.5, 4), RangeError);
  });
});
