import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { logMelWindows } from '../src/media/mel';
import {
  AUDIO_FPS, audioFrameCount, audioPromptFor, concatSegments, HIDDEN, LAYERS, positionalEncoding, PROMPT_SIZE, PROMPT_TOKENS,
  SEGMENT_FRAMES, SEGMENT_SAMPLES, segmentCount, StreamingAudioFeatures, videoFrameCount, WINDOW,
} from '../src/pipelines/lipsync/audio-features';

const FRAME = LAYERS * HIDDEN;

/** Exactly representable in float32 and never 0, so padding (0) and each (frame, layer, channel) are told apart. */
const code = (frame: number, layer: number, channel: number) => frame + 1 + layer / 8 + channel / 1024;

/** Encoder output for `audioSamples`, one [1500, 5, 384] segment per 30 s, value code(global frame, ...). */
function syntheticHidden(audioSamples: number): Float32Array[] {
  return Array.from({ length: segmentCount(audioSamples) }, (_, s) => {
    const h = new Float32Array(SEGMENT_FRAMES * FRAME);
    for (let t = 0; t < SEGMENT_FRAMES; t++) {
      for (let l = 0; l < LAYERS; l++) {
        for (let c = 0; c < HIDDEN; c++) h[(t * LAYERS + l) * HIDDEN + c] = code(s * SEGMENT_FRAMES + t, l, c);
      }
    }
    return h;
  });
}

/** What get_whisper_chunk + pe() give for video frame i at 25 fps: audio frames 2i-4 .. 2i+5, zeros outside. */
function expectedPrompt(frames: number, i: number): Float32Array {
  const pe = positionalEncoding();
  const out = new Float32Array(PROMPT_SIZE);
  for (let w = 0; w < WINDOW; w++) {
    const src = 2 * i - 4 + w;
    for (let l = 0; l < LAYERS; l++) {
      for (let c = 0; c < HIDDEN; c++) {
        const j = (w * LAYERS + l) * HIDDEN + c;
        out[j] = (src >= 0 && src < frames ? Math.fround(code(src, l, c)) : 0) + pe[j]!;
      }
    }
  }
  return out;
}

const SECONDS_61 = 61 * 16000;

describe('MuseTalk audio feature windows', () => {
  test('frame counts follow get_whisper_chunk for several lengths', () => {
    const cases: [samples: number, segments: number, audioFrames: number, videoFrames: number][] = [
      [0, 0, 0, 0],
      [1, 1, 0, 0],
      [24000, 1, 75, 37],
      [480000, 1, 1500, 750],
      [480001, 2, 1500, 750],
      [SECONDS_61, 3, 3050, 1525],
    ];
    for (const [samples, segments, audioFrames, videoFrames] of cases) {
      assert.deepEqual(
        [segmentCount(samples), audioFrameCount(samples), videoFrameCount(samples)],
        [segments, audioFrames, videoFrames],
        `${samples} samples`,
      );
    }
    assert.equal(videoFrameCount(480000, 30), 900);
    assert.equal(videoFrameCount(480000, 29.97), 870, 'MuseTalk truncates the fps with int()');
    assert.throws(() => videoFrameCount(-1), RangeError);
    assert.throws(() => videoFrameCount(100, 0.5), RangeError);
  });

  test('one 30 s mel window per encoder segment', () => {
    for (const n of [0, 1, 480000, 480001]) assert.equal(logMelWindows(new Float32Array(n)).length, segmentCount(n));
  });

  test('the video lasts as long as the audio, within one frame', () => {
    for (const samples of [1, 639, 640, 16000, 24000, 12345, 480000, 480001, 777777, SECONDS_61]) {
      const seconds = samples / 16000;
      const n = videoFrameCount(samples);
      assert.ok(n / 25 <= seconds && seconds - n / 25 < 1 / 25, `${samples} samples -> ${n} frames`);
      assert.ok(audioFrameCount(samples) >= 2 * n, 'every frame has its centre audio frames');
    }
  });

  test('segments are concatenated and trimmed to the audio (61 s: 3 segments, 3050 frames)', () => {
    const hidden = syntheticHidden(SECONDS_61);
    const features = concatSegments(hidden, SECONDS_61);
    assert.equal(features.frames, 3050);
    assert.equal(features.data.length, 3050 * FRAME);
    for (const g of [0, 1, 1499, 1500, 2999, 3000, 3049]) {
      for (const [l, c] of [[0, 0], [4, 383], [2, 100]] as const) {
        assert.equal(features.data[(g * LAYERS + l) * HIDDEN + c], Math.fround(code(g, l, c)), `frame ${g}`);
      }
    }
    assert.throws(() => concatSegments(hidden.slice(0, 2), SECONDS_61), RangeError);
    assert.throws(() => concatSegments([new Float32Array(10)], 1000), RangeError);
    assert.deepEqual(concatSegments([], 0), { data: new Float32Array(0), frames: 0 });
  });

  test('windows: 10 audio frames x 5 layers from 2i-4, zero-padded at both ends, PE added', () => {
    const features = concatSegments(syntheticHidden(SECONDS_61), SECONDS_61);
    const n = videoFrameCount(SECONDS_61);
    for (const i of [0, 1, 2, 3, 750, 751, n - 3, n - 2, n - 1]) {
      assert.deepEqual(audioPromptFor(features, i), expectedPrompt(features.frames, i), `video frame ${i}`);
    }
    // frame 0: rows 0..19 (4 audio frames x 5 layers) are left padding, row 20 is audio frame 0 layer 0
    const pe = positionalEncoding();
    const first = audioPromptFor(features, 0);
    assert.equal(first[19 * HIDDEN + 7], pe[19 * HIDDEN + 7]);
    assert.equal(first[20 * HIDDEN + 7], Math.fround(code(0, 0, 7) + pe[20 * HIDDEN + 7]!));
    // last frame 1524 reads audio frames 3044..3053; 3050.. are right padding
    const last = audioPromptFor(features, n - 1);
    assert.equal(last[(6 * LAYERS - 1) * HIDDEN], Math.fround(code(3049, 4, 0) + pe[(6 * LAYERS - 1) * HIDDEN]!));
    assert.equal(last[6 * LAYERS * HIDDEN], pe[6 * LAYERS * HIDDEN]);
  });

  test('indices past the padded sequence fail like the source assert; out is reused', () => {
    const samples = 24000;
    const features = concatSegments(syntheticHidden(samples), samples);
    // padded length 4 + 75 + 12 = 91: frame i needs 2i + 10 <= 91
    assert.doesNotThrow(() => audioPromptFor(features, 40));
    assert.throws(() => audioPromptFor(features, 41), RangeError);
    assert.throws(() => audioPromptFor(features, -1), RangeError);
    const out = new Float32Array(PROMPT_SIZE).fill(9);
    assert.equal(audioPromptFor(features, 5, 25, out), out);
    assert.deepEqual(out, expectedPrompt(features.frames, 5));
    assert.throws(() => audioPromptFor(features, 0, 25, new Float32Array(3)), RangeError);
  });

  test('streamed: the same prompts for every frame, each 30 s window encoded once as the frames reach it, never more than two held', async () => {
    const hidden = syntheticHidden(SECONDS_61);
    const whole = concatSegments(hidden, SECONDS_61);
    const encodedAt: number[] = [];
    const stream = new StreamingAudioFeatures(new Float32Array(SECONDS_61), async (_samples, offset) => {
      encodedAt.push(offset);
      return hidden[offset / SEGMENT_SAMPLES]!;
    });
    const total = videoFrameCount(SECONDS_61);
    const out = new Float32Array(PROMPT_SIZE);
    for (let first = 0; first < total; first += 8) {
      const last = Math.min(first + 8, total) - 1;
      await stream.prepare(first, last);
      for (let i = first; i <= last; i++) {
        stream.promptFor(i, out);
        assert.deepEqual(out, audioPromptFor(whole, i), `video frame ${i}`);
      }
      // Frame 746 reads audio frames 1488..1497 (window 0 only); 748 reads 1492..1501, the first that needs window 1.
      if (last < 748) assert.deepEqual(encodedAt, [0], `frames up to ${last} need only the first window`);
    }
    assert.deepEqual(encodedAt, [0, SEGMENT_SAMPLES, 2 * SEGMENT_SAMPLES], 'each window once, in order');
    assert.equal(stream.peakHeld, 2);
    assert.throws(() => stream.promptFor(0), /audio frame 0 was not prepared/, 'the first window was dropped once passed');
  });

  test('other frame rates use floor(i * 50 / fps) and ceil(50 / fps) padding', () => {
    const samples = 48000;
    const features = concatSegments(syntheticHidden(samples), samples);
    const pe = positionalEncoding();
    // 30 fps: multiplier 5/3, padding 2 * 2 = 4 in front; frame 7 starts at floor(11.67) = 11 -> audio frame 7
    const p = audioPromptFor(features, 7, 30);
    assert.equal(p[0], Math.fround(code(7, 0, 0) + pe[0]!));
    assert.equal(AUDIO_FPS, 50);
  });

  test('positional encoding is MuseTalk PositionalEncoding(d_model=384) for 50 positions, cached', () => {
    const pe = positionalEncoding();
    assert.equal(pe.length, PROMPT_TOKENS * HIDDEN);
    assert.equal(PROMPT_TOKENS, 50);
    assert.equal(positionalEncoding(), pe);
    let worst = 0;
    for (let pos = 0; pos < 50; pos++) {
      for (let i = 0; i < HIDDEN; i += 2) {
        const div = Math.exp((i * -Math.log(10000)) / HIDDEN);
        worst = Math.max(worst, Math.abs(pe[pos * HIDDEN + i]! - Math.sin(pos * div)), Math.abs(pe[pos * HIDDEN + i + 1]! - Math.cos(pos * div)));
      }
    }
    // float32 arguments up to 49 rad carry ~3e-6 of rounding, as in torch
    assert.ok(worst < 1e-5, `max |pe - formula| ${worst}`);
    assert.equal(pe[0], 0);
    assert.equal(pe[1], 1);
    assert.equal(pe[HIDDEN], Math.fround(Math.sin(1)));
    assert.equal(pe[HIDDEN + 1], Math.fround(Math.cos(1)));
    const small = positionalEncoding(3, 4);
    assert.equal(small.length, 12);
    assert.equal(small[2 * 4 + 2], Math.fround(Math.sin(Math.fround(2 * Math.fround(Math.exp(Math.fround(2 * Math.fround(-Math.log(10000) / 4))))))));
  });
});
