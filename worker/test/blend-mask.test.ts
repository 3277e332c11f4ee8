import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, test } from 'node:test';
import { blendRgb, blurKernelSize, coneKernel, ellipseKernel, expandedCropBox, jawBlendMask, jawMask, LABEL, landmarkLabelMap, maskOverExpandedCrop, PARSING_SIZE, type ExpandedCropBox } from '../src/pipelines/avatar-prepare/blend-mask';
import { type MuseTalkRect, rectCrop } from '../src/pipelines/avatar-prepare/face-track';
import { drawAlpha, patchPlanes } from '../src/pipelines/shared/frames';

/**
 * The blend mask and composite against MuseTalk's own steps in numpy + OpenCV
 * (scripts/reference/musetalk_blending.py writes fixtures/musetalk-reference/blending.json).
 * From a label map on, all integer arithmetic: compared exactly. The landmark polygon fill against
 * cv2.fillPoly: fillPoly also paints the pixels its outline passes through (see fillPolygon), so ours
 * may lack up to its edge pixels, each differing pixel within 2 pixels of agreement, and the blurred
 * masks from the two fills stay within 32 levels (16 seen).
 */
interface Samples {
  stride: number;
  sum: number;
  values: number[];
}
interface Case {
  landmarks: number[];
  rect: [number, number, number, number];
  cropBox: [number, number, number, number];
  labels: number[];
  labelCounts: Record<string, number>;
  jaw: number[];
  blurKernel: number;
  mask: Samples;
  region: [number, number, number, number];
  blended: Samples;
}
interface Reference {
  frame: { width: number; height: number };
  cheekKernel: number[];
  coneKernel: number[];
  cases: Case[];
}

const reference = JSON.parse(readFileSync(path.resolve(__dirname, '../../test/fixtures/musetalk-reference/blending.json'), 'utf8')) as Reference;
const { width, height } = reference.frame;

/** [value, count, ...] back to an array. */
function decodeRuns(runs: number[]): Uint8Array {
  const total = runs.reduce((sum, v, i) => (i % 2 ? sum + v : sum), 0);
  const out = new Uint8Array(total);
  let at = 0;
  for (let i = 0; i < runs.length; i += 2) out.fill(runs[i]!, at, (at += runs[i + 1]!));
  return out;
}

/** The scripts' frame (musetalk_preprocess.py pattern) and generated face (face_pattern). */
function frameRgb(w: number, h: number): Uint8Array {
  const rgb = new Uint8Array(w * h * 3);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) for (let c = 0; c < 3; c++) rgb[(y * w + x) * 3 + c] = (x * 31 + y * 17 + c * 101 + ((x * y) % 97)) % 256;
  return rgb;
}
function faceRgb(w: number, h: number): Uint8Array {
  const rgb = new Uint8Array(w * h * 3);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) for (let c = 0; c < 3; c++) rgb[(y * w + x) * 3 + c] = (x * 7 + y * 3 + c * 85 + 40) % 256;
  return rgb;
}

function rectOf([x1, y1, x2, y2]: readonly number[]): MuseTalkRect {
  return { x1: x1!, y1: y1!, x2: x2!, y2: y2! };
}

/** The largest difference at the sampled indices, and whether the sums agree. */
function compare(actual: ArrayLike<number>, expected: Samples): { diff: number; at: number; sum: number } {
  let result = { diff: 0, at: -1, sum: 0 };
  expected.values.forEach((want, i) => {
    const diff = Math.abs(actual[i * expected.stride]! - want);
    if (diff > result.diff) result = { ...result, diff, at: i * expected.stride };
  });
  let sum = 0;
  for (let i = 0; i < actual.length; i++) sum += actual[i]!;
  return { ...result, sum: sum - expected.sum };
}

/** The pipeline up to the expanded-crop mask, from landmarks. */
function expandedMask(landmarks: Float32Array, rect: MuseTalkRect): { mask: Uint8Array; box: ExpandedCropBox } {
  const box = expandedCropBox(rect);
  return { mask: maskOverExpandedCrop(jawMask(landmarkLabelMap(landmarks, box)), rect, box), box };
}

/** A frame point in crop-space pixels. */
function inCropSpace(x: number, y: number, rect: MuseTalkRect, size = 256): number {
  const crop = rectCrop(rect, width, height);
  return Math.floor(((y - crop.y + 0.5) * size) / crop.height) * size + Math.floor(((x - crop.x + 0.5) * size) / crop.width);
}

describe('MuseTalk 1.5 blend mask against its reference values (numpy + OpenCV)', () => {
  const frame = frameRgb(width, height);

  test('the structuring elements are FaceParsing\'s: the cone kernel and getStructuringElement(MORPH_ELLIPSE, (35, 3))', () => {
    assert.deepEqual([...coneKernel()], [...decodeRuns(reference.coneKernel)]);
    assert.deepEqual([...ellipseKernel(35, 3)], reference.cheekKernel);
  });

  for (const [n, c] of reference.cases.entries()) {
    const rect = rectOf(c.rect);
    const landmarks = Float32Array.from(c.landmarks);
    const labels = decodeRuns(c.labels);
    const label = `case ${n}: rect ${rect.x2 - rect.x1}x${rect.y2 - rect.y1} at (${rect.x1}, ${rect.y1})`;

    test(`${label}: get_crop_box, jaw mode, get_image_prepare_material and get_image_blending to the bit`, () => {
      const box = expandedCropBox(rect);
      assert.deepEqual([box.x1, box.y1, box.x2, box.y2], c.cropBox);
      assert.equal(blurKernelSize(box.side), c.blurKernel);
      const jaw = jawMask(labels);
      const expectedJaw = decodeRuns(c.jaw);
      const wrong = jaw.reduce((count, v, i) => count + (v === expectedJaw[i] ? 0 : 1), 0);
      assert.equal(wrong, 0, `${wrong} jaw-mode pixels differ`);
      const mask = maskOverExpandedCrop(jaw, rect, box);
      const masked = compare(mask, c.mask);
      assert.deepEqual([masked.diff, masked.sum], [0, 0], `mask differs by ${masked.diff} at ${masked.at}, sum by ${masked.sum}`);

      const face = { rgb: faceRgb(rect.x2 - rect.x1, rect.y2 - rect.y1), width: rect.x2 - rect.x1, height: rect.y2 - rect.y1 };
      const blended = blendRgb(frame, width, height, face, rect, mask);
      const [x1, y1, x2, y2] = c.region;
      const region = new Uint8Array((x2 - x1) * (y2 - y1) * 3);
      for (let y = y1; y < y2; y++) region.set(blended.subarray((y * width + x1) * 3, (y * width + x2) * 3), (y - y1) * (x2 - x1) * 3);
      const pixels = compare(region, c.blended);
      assert.deepEqual([pixels.diff, pixels.sum], [0, 0], `blend differs by ${pixels.diff} at ${pixels.at}, sum by ${pixels.sum}`);
      let changedOutside = 0;
      for (let i = 0; i < frame.length; i++) {
        const [x, y] = [Math.floor(i / 3) % width, Math.floor(i / 3 / width)];
        if ((x < rect.x1 || x >= rect.x2 || y < rect.y1 || y >= rect.y2) && blended[i] !== frame[i]) changedOutside++;
      }
      assert.equal(changedOutside, 0, 'outside the face rect the frame comes back unchanged');
    });

    test(`${label}: the landmark polygons cover what cv2.fillPoly does but for its outline pixels`, () => {
      const ours = landmarkLabelMap(landmarks, expandedCropBox(rect));
      for (const [name, value] of Object.entries(LABEL)) {
        const want = c.labelCounts[String(value)];
        if (want === undefined) continue;
        const got = ours.reduce((count, v) => count + (v === value ? 1 : 0), 0);
        // fillPoly's extra pixels are its outline: at most the pixels on the edge of its region.
        const edge = labels.reduce((count, v, i) => count + (v === value && [1, -1, PARSING_SIZE, -PARSING_SIZE].some((d) => labels[i + d] !== value) ? 1 : 0), 0);
        assert.ok(got <= want && want - got <= edge, `${name}: ${got} pixels, fillPoly ${want} with ${edge} on its edge`);
      }
      // Every pixel where the maps differ is within 2 pixels of one where ours holds fillPoly's label:
      // they differ along the outlines only (2, not 1: at an acute vertex, such as the nose's top,
      // fillPoly paints the vertex's own pixel and its outline's, a sliver past the centres inside).
      const around = [-2, -1, 0, 1, 2];
      let far = 0;
      for (let y = 2; y < PARSING_SIZE - 2; y++) {
        for (let x = 2; x < PARSING_SIZE - 2; x++) {
          const i = y * PARSING_SIZE + x;
          if (ours[i] === labels[i]) continue;
          const near = around.some((dy) => around.some((dx) => ours[i + dy * PARSING_SIZE + dx] === labels[i]));
          if (!near) far++;
        }
      }
      assert.equal(far, 0, `${far} differing pixels are more than 2 pixels from where ours has fillPoly's label`);
      const ourMask = maskOverExpandedCrop(jawMask(ours), rect);
      const theirMask = maskOverExpandedCrop(jawMask(labels), rect);
      const worst = ourMask.reduce((m, v, i) => Math.max(m, Math.abs(v - theirMask[i]!)), 0);
      console.log(`${label}: blurred mask from our fill vs fillPoly's: at most ${worst} levels apart`);
      assert.ok(worst <= 32, `the fills' masks differ by ${worst} levels`);
    });

    test(`${label}: the crop-space mask, sampled back over the crop box as drawAlpha does, stays close to the expanded-crop mask`, () => {
      const crop = rectCrop(rect, width, height);
      const { mask, box } = expandedMask(landmarks, rect);
      const patch = patchPlanes({ x: 0, y: 0, width, height });
      drawAlpha(patch, jawBlendMask(landmarks, rect, crop), crop, 256);
      let [worst, total] = [0, 0];
      for (let y = crop.y; y < crop.y + crop.height; y++) {
        for (let x = crop.x; x < crop.x + crop.width; x++) {
          const diff = Math.abs(patch.a[y * width + x]! - mask[(y - box.y1) * box.side + (x - box.x1)]!);
          [worst, total] = [Math.max(worst, diff), total + diff];
        }
      }
      const mean = total / (crop.width * crop.height);
      console.log(`${label}: round trip expanded crop -> 256x256 -> crop box: max ${worst}, mean ${mean.toFixed(3)} levels`);
      assert.ok(worst <= 8 && mean <= 0.5, `round trip off by ${worst} (mean ${mean})`);
    });
  }
});

describe('MuseTalk 1.5 blend mask: behaviour', () => {
  const [small, turned, outside] = reference.cases.map((c) => ({ rect: rectOf(c.rect), landmarks: Float32Array.from(c.landmarks) }));

  test('nothing above the expanded crop\'s middle row but what the blur carries up (its radius)', () => {
    for (const { rect, landmarks } of [small!, turned!, outside!]) {
      const { mask, box } = expandedMask(landmarks, rect);
      const clear = box.side / 2 - (blurKernelSize(box.side) >> 1);
      assert.ok(mask.subarray(0, clear * box.side).every((v) => v === 0));
      assert.ok(mask.subarray(clear * box.side, (box.side / 2) * box.side).some((v) => v > 0), 'the blur does reach above the middle');
      const crop = rectCrop(rect, width, height);
      const cropMask = jawBlendMask(landmarks, rect, crop);
      const lastClearRow = Math.floor(((box.y1 + clear - 1 - crop.y) * 256) / crop.height) - 1;
      assert.ok(cropMask.subarray(0, Math.max(0, lastClearRow) * 256).every((v) => v === 0));
    }
  });

  test('255 round the mouth, 0 on the nose (removed from the parsing) and outside the jaw', () => {
    for (const { rect, landmarks } of [small!, turned!]) {
      const mask = jawBlendMask(landmarks, rect, rectCrop(rect, width, height));
      const at = (i: number): number => mask[inCropSpace(landmarks[2 * i]!, landmarks[2 * i + 1]!, rect)]!;
      for (const lip of [51, 57, 62, 66]) assert.equal(at(lip), 255, `landmark ${lip}`);
      // The nose tip sits a few pixels below the middle row; a mask that kept the nose would be well over 100 there.
      assert.ok(at(30) < 40, `nose tip ${at(30)}`);
      // The jaw curves in from the box's sides and the cheek erosion keeps the mask off them (the
      // turned face's jaw comes within the blur's reach of one side: a level or so there).
      const sides = Array.from({ length: 256 }, (_, j) => Math.max(mask[j * 256]!, mask[j * 256 + 255]!));
      assert.ok(Math.max(...sides) <= 2, `the box's sides reach ${Math.max(...sides)}`);
      const box = expandedCropBox(rect);
      const parsing = jawMask(landmarkLabelMap(landmarks, box));
      const labels = landmarkLabelMap(landmarks, box);
      assert.ok(labels.every((v, i) => v !== LABEL.nose || parsing[i] === 0), 'no nose pixel in the jaw-mode parsing');
    }
  });

  test('a mirrored face gives the mirrored mask (but for the one-column asymmetry of FaceParsing\'s cheek bands)', () => {
    // iBUG 300-W left/right pairs; the midline points map to themselves.
    const pairs = [[0, 16], [1, 15], [2, 14], [3, 13], [4, 12], [5, 11], [6, 10], [7, 9], [17, 26], [18, 25], [19, 24], [20, 23], [21, 22], [31, 35], [32, 34], [36, 45], [37, 44], [38, 43], [39, 42], [40, 47], [41, 46], [48, 54], [49, 53], [50, 52], [55, 59], [56, 58], [60, 64], [61, 63], [65, 67]];
    const partner = Array.from({ length: 68 }, (_, i) => i);
    for (const [a, b] of pairs) [partner[a!], partner[b!]] = [b!, a!];
    const { rect, landmarks } = small!;
    assert.equal((rect.x1 + rect.x2) % 2, 0, 'an even centre, so get_crop_box mirrors exactly');
    const mirrored = new Float32Array(136);
    for (let i = 0; i < 68; i++) [mirrored[2 * i], mirrored[2 * i + 1]] = [width - 1 - landmarks[2 * partner[i]!]!, landmarks[2 * partner[i]! + 1]!];
    const mirroredRect = { ...rect, x1: width - rect.x2, x2: width - rect.x1 };
    // The parsing: the same mirrored, but for columns 166 and 345 (= 511 - 166), where FaceParsing's
    // cheek mask (x <= 256 - 90 or x >= 256 + 90) is one column wider on the left.
    const jaw = jawMask(landmarkLabelMap(landmarks, expandedCropBox(rect)));
    const jawMirrored = jawMask(landmarkLabelMap(mirrored, expandedCropBox(mirroredRect)));
    const columns = new Set<number>();
    jaw.forEach((v, i) => v !== jawMirrored[i - (i % PARSING_SIZE) + PARSING_SIZE - 1 - (i % PARSING_SIZE)] && columns.add(i % PARSING_SIZE));
    assert.deepEqual([...columns].sort((p, q) => p - q), [166, 345]);
    // Blurred, that column is worth a few tens of levels on the jaw line.
    const a = expandedMask(landmarks, rect);
    const b = expandedMask(mirrored, mirroredRect);
    const side = a.box.side;
    let [worst, differing] = [0, 0];
    for (let y = 0; y < side; y++) {
      for (let x = 0; x < side; x++) {
        const diff = Math.abs(a.mask[y * side + x]! - b.mask[y * side + side - 1 - x]!);
        [worst, differing] = [Math.max(worst, diff), differing + (diff > 0 ? 1 : 0)];
      }
    }
    assert.ok(worst <= 48 && differing < side * side * 0.05, `mirror differs by up to ${worst} at ${differing} pixels`);
  });

  test('a rect partly outside the frame: the crop-space mask covers the clipped crop, the blend touches nothing outside the frame\'s part', () => {
    const { rect, landmarks } = outside!;
    assert.ok(rect.y1 < 0 && rect.x2 > width);
    const crop = rectCrop(rect, width, height);
    const mask = jawBlendMask(landmarks, rect, crop);
    assert.equal(mask.length, 256 * 256);
    // The crop's lower rows hold the mouth and chin; its top rows (the brows, above the middle) are clear.
    assert.ok(mask.subarray(0, 256 * 16).every((v) => v === 0));
    assert.ok(mask.some((v) => v === 255));
    const { mask: over, box } = expandedMask(landmarks, rect);
    const face = { rgb: faceRgb(rect.x2 - rect.x1, rect.y2 - rect.y1), width: rect.x2 - rect.x1, height: rect.y2 - rect.y1 };
    const frame = frameRgb(width, height);
    assert.equal(blendRgb(frame, width, height, face, rect, over).length, frame.length);
    assert.ok(box.x2 > width && box.y1 < 0);
  });

  test('landmarks of the wrong length, a face of the wrong size and a mask of the wrong size are RangeErrors', () => {
    const { rect, landmarks } = small!;
    const crop = rectCrop(rect, width, height);
    assert.throws(() => jawBlendMask(new Float32Array(134), rect, crop), RangeError);
    assert.throws(() => jawBlendMask(new Float32Array(137), rect, crop), RangeError);
    const { mask } = expandedMask(landmarks, rect);
    const frame = frameRgb(width, height);
    assert.throws(() => blendRgb(frame, width, height, { rgb: new Uint8Array(3), width: 1, height: 1 }, rect, mask), RangeError);
    const face = { rgb: faceRgb(rect.x2 - rect.x1, rect.y2 - rect.y1), width: rect.x2 - rect.x1, height: rect.y2 - rect.y1 };
    assert.throws(() => blendRgb(frame, width, height, face, rect, mask.subarray(1)), RangeError);
  });
});
