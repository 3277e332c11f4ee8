import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, test } from 'node:test';
import { cropResize } from '../src/pipelines/avatar-prepare/face-track';
import { toNchw } from '../src/pipelines/shared/frames';

/**
 * The TypeScript stages against values computed by MuseTalk's own rules with numpy and OpenCV
 * (scripts/reference/musetalk_preprocess.py writes fixtures/musetalk-reference/; see there).
 * Tolerances: 1 level in uint8, 1e-5 in float.
 */
interface Samples {
  stride: number;
  values: number[];
}
interface Reference {
  frame: { width: number; height: number };
  cases: Array<{ box: [number, number, number, number]; crop: Samples; whole: Samples; masked: Samples }>;
}

const reference = JSON.parse(readFileSync(path.resolve(__dirname, '../../test/fixtures/musetalk-reference/preprocess.json'), 'utf8')) as Reference;

/** The script's frame: the same formula. */
function pattern(width: number, height: number): Uint8Array {
  const rgb = new Uint8Array(width * height * 3);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      for (let c = 0; c < 3; c++) rgb[(y * width + x) * 3 + c] = (x * 31 + y * 17 + c * 101 + ((x * y) % 97)) % 256;
    }
  }
  return rgb;
}

/** The largest difference between `actual` at the sampled indices and the samples. */
function worst(actual: ArrayLike<number>, expected: Samples): { diff: number; at: number } {
  let result = { diff: 0, at: -1 };
  expected.values.forEach((want, i) => {
    const diff = Math.abs(actual[i * expected.stride]! - want);
    if (diff > result.diff) result = { diff, at: i * expected.stride };
  });
  return result;
}

describe('MuseTalk preprocessing against its reference values (numpy + OpenCV)', () => {
  const { width, height } = reference.frame;
  const frame = pattern(width, height);

  for (const c of reference.cases) {
    const [x1, y1, x2, y2] = c.box;
    test(`crop ${x2 - x1}x${y2 - y1} at (${x1}, ${y1}): stretched to 256x256 as cv2.resize(INTER_LANCZOS4), then preprocess_img whole and half-masked`, async () => {
      const crop = await cropResize(frame, width, height, { x: x1, y: y1, width: x2 - x1, height: y2 - y1 });
      const pixels = worst(crop, c.crop);
      assert.ok(pixels.diff <= 1, `crop differs by ${pixels.diff} levels at ${pixels.at}`);
      for (const [name, masked] of [['whole', false], ['masked', true]] as const) {
        const tensor = new Float32Array(3 * 256 * 256);
        toNchw(crop, 256, tensor, 0, masked);
        const floats = worst(tensor, c[name]);
        // Exact crops leave 1e-5 for preprocess_img itself; a level of crop difference is 2/255 more.
        assert.ok(floats.diff <= 1e-5 + (pixels.diff * 2) / 255, `${name}: differs by ${floats.diff} at ${floats.at}`);
      }
    });
  }
});
