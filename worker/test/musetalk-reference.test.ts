import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, test } from 'node:test';
import { cropResize, rectFromLandmarks } from '../src/pipelines/avatar-prepare/face-track';
import { audioPromptFor, concatSegments, HIDDEN, LAYERS, PROMPT_SIZE, SEGMENT_FRAMES, SEGMENT_SAMPLES, segmentCount, StreamingAudioFeatures, videoFrameCount } from '../src/pipelines/lipsync/audio-features';
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
  rects: Array<{ landmarks: Array<[number, number]>; detector: [number, number, number, number]; bboxShift: number; rect: [number, number, number, number] }>;
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

  test('the crop rectangle from 68 landmarks follows get_landmark_and_bbox and v1.5\'s extra_margin, but for the two edge cases it clips', () => {
    let same = 0;
    for (const [i, c] of reference.rects.entries()) {
      const xs = c.landmarks.map(([x]) => Math.trunc(x));
      const ys = c.landmarks.map(([, y]) => Math.trunc(y));
      const extent = { minX: Math.min(...xs), maxX: Math.max(...xs), maxY: Math.max(...ys), y29: ys[29]! };
      const [dx1, dy1, dx2, dy2] = c.detector;
      const ours = rectFromLandmarks(extent, { x1: dx1, y1: dy1, x2: dx2, y2: dy2 }, width, height, { bboxShift: c.bboxShift });
      const [x1, y1, x2, y2] = c.rect;
      const top = extent.y29 + c.bboxShift - (extent.maxY - extent.y29 - c.bboxShift);
      const landmarkRectValid = extent.maxY - top > 0 && extent.maxX - extent.minX > 0;
      if (y1 >= 0 && x1 >= 0 && !(landmarkRectValid && extent.minX < 0)) {
        // numpy slices past the right edge stop at it: the crop MuseTalk cuts is the one clipped there.
        assert.deepEqual(ours, { x1, y1, x2: Math.min(x2, width), y2 }, `case ${i}`);
        same++;
      } else {
        // MuseTalk would slice from a negative top (numpy wraps it round) or jump to the detector's box; the worker clips.
        const expected = landmarkRectValid ? { x1: Math.max(0, extent.minX), y1: Math.max(0, top), x2: Math.min(width, extent.maxX), y2: Math.min(extent.maxY + 10, height) } : { x1: Math.max(0, dx1), y1: Math.max(0, dy1), x2: Math.min(width, dx2), y2: Math.min(dy2 + 10, height) };
        assert.deepEqual(ours, expected, `case ${i} (clipped)`);
      }
    }
    assert.ok(same >= 20, `${same} of ${reference.rects.length} cases away from the edges`);
  });

  const audio = JSON.parse(readFileSync(path.resolve(__dirname, '../../test/fixtures/musetalk-reference/audio.json'), 'utf8')) as {
    cases: Array<{ samples: number; fps: number; frames: number; prompts: Array<{ frame: number } & Samples> }>;
  };

  /** The script's synthetic encoder output for one 30 s window: sin(t * 0.013 + layer * 0.7 + channel * 0.0031), t counted over all windows. */
  function window(segment: number): Float32Array {
    const out = new Float32Array(SEGMENT_FRAMES * LAYERS * HIDDEN);
    for (let t = 0; t < SEGMENT_FRAMES; t++) {
      for (let l = 0; l < LAYERS; l++) {
        for (let c = 0; c < HIDDEN; c++) out[(t * LAYERS + l) * HIDDEN + c] = Math.sin((segment * SEGMENT_FRAMES + t) * 0.013 + l * 0.7 + c * 0.0031);
      }
    }
    return out;
  }

  for (const c of audio.cases) {
    test(`audio prompts for ${c.samples / 16000} s at ${c.fps} fps follow get_whisper_chunk and PositionalEncoding, whole and streamed`, async () => {
      assert.equal(videoFrameCount(c.samples, c.fps), c.frames, 'num_frames');
      const windows = Array.from({ length: segmentCount(c.samples) }, (_, k) => window(k));
      const features = concatSegments(windows, c.samples);
      const stream = new StreamingAudioFeatures(new Float32Array(c.samples), async (_all, offset) => windows[offset / SEGMENT_SAMPLES]!, c.fps);
      const out = new Float32Array(PROMPT_SIZE);
      for (const expected of c.prompts) {
        const whole = worst(audioPromptFor(features, expected.frame, c.fps), expected);
        assert.ok(whole.diff <= 1e-5, `frame ${expected.frame}: differs by ${whole.diff} at ${whole.at}`);
        await stream.prepare(expected.frame, expected.frame);
        const streamed = worst(stream.promptFor(expected.frame, out), expected);
        assert.ok(streamed.diff <= 1e-5, `frame ${expected.frame} streamed: differs by ${streamed.diff} at ${streamed.at}`);
      }
    });
  }
});
