import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, test } from 'node:test';
import {
  logMelWindow, logMelWindows, melFilterbank, N_FFT, N_FREQ, N_MELS, SAMPLE_RATE, SILENCE_VALUE, WINDOW_FRAMES, WINDOW_SAMPLES,
} from '../src/media/mel';

// Compiled to worker/dist/test; the fixtures stay in the source tree.
const FIXTURES = path.join(__dirname, '../../test/fixtures/mel');

interface RefCase {
  name: string;
  length: number;
  burstAt: number;
  stats: { min: number; max: number; mean: number };
  frames: Record<string, number[]>;
  stride: number;
  strided: number[];
}
const reference = JSON.parse(readFileSync(path.join(FIXTURES, 'reference.json'), 'utf8')) as { cases: RefCase[] };
const whisperFilters = JSON.parse(readFileSync(path.join(FIXTURES, 'mel_filters_80.json'), 'utf8')) as { nonzero: [number, number, number][] };

/**
 * Against reference.json (transformers.js, float64 FFT): we agree to ~1.2e-7 (one float32 ulp near
 * 1). An all-float32 pipeline such as PyTorch Whisper differs from the same reference by up to
 * 1.4e-5 on this signal (mel_filters.py). 5e-5 admits either; a wrong window, padding or frame
 * offset moves values by 1e-2 or more.
 */
const TOL = 5e-5;

/** The test signal of gen-reference.mjs (keep in sync): 1.5 s of 440 Hz + 1-4 kHz chirp + LCG noise. */
function burst(): Float32Array {
  const x = new Float32Array(24000);
  let state = 12345;
  for (let n = 0; n < x.length; n++) {
    const t = n / 16000;
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    const noise = (state / 4294967296 - 0.5) * 0.002;
    x[n] = 0.5 * Math.sin(2 * Math.PI * 440 * t) + 0.3 * Math.sin(2 * Math.PI * (1000 * t + 1000 * t * t)) + noise;
  }
  return x;
}

function signalFor(c: RefCase, total = c.length, at = c.burstAt): Float32Array {
  const x = new Float32Array(total);
  x.set(burst(), at);
  return x;
}

function assertMatches(mel: Float32Array, c: RefCase): void {
  assert.equal(mel.length, N_MELS * WINDOW_FRAMES);
  let worst = 0;
  for (const [f, col] of Object.entries(c.frames)) {
    col.forEach((v, m) => { worst = Math.max(worst, Math.abs(mel[m * WINDOW_FRAMES + Number(f)]! - v)); });
  }
  c.strided.forEach((v, i) => { worst = Math.max(worst, Math.abs(mel[i * c.stride]! - v)); });
  assert.ok(worst < TOL, `${c.name}: max |diff| ${worst}`);
  let min = Infinity, max = -Infinity, sum = 0;
  for (const v of mel) { min = Math.min(min, v); max = Math.max(max, v); sum += v; }
  assert.ok(Math.abs(min - c.stats.min) < TOL && Math.abs(max - c.stats.max) < TOL, `${c.name}: range ${min}..${max}`);
  assert.ok(Math.abs(sum / mel.length - c.stats.mean) < TOL, `${c.name}: mean ${sum / mel.length}`);
}

function refCase(name: string): RefCase {
  const c = reference.cases.find((x) => x.name === name);
  assert.ok(c, `reference case ${name}`);
  return c;
}

describe('mel filterbank', () => {
  const fb = melFilterbank();

  test('80 x 201, cached, and equal to the filters Whisper ships (mel_filters.npz, mel_80)', () => {
    assert.equal(fb.length, N_MELS * N_FREQ);
    assert.equal(N_FREQ, 201);
    assert.equal(melFilterbank(), fb);
    const expected = new Float32Array(N_MELS * N_FREQ);
    for (const [m, k, v] of whisperFilters.nonzero) expected[m * N_FREQ + k] = v;
    for (let i = 0; i < expected.length; i++) {
      const e = expected[i]!, a = fb[i]!;
      assert.ok(Math.abs(a - e) <= 1e-6 * Math.abs(e) + 1e-12, `entry ${Math.floor(i / N_FREQ)},${i % N_FREQ}: ${a} vs ${e}`);
    }
  });

  test('Slaney triangles: peak at the centre frequency, height 2 / width, unit area in Hz', () => {
    // Slaney mel scale: linear 200/3 Hz per mel below 1 kHz, log step ln(6.4)/27 above.
    const melToHz = (mel: number) => (mel < 15 ? (200 / 3) * mel : 1000 * Math.exp((Math.log(6.4) / 27) * (mel - 15)));
    const melMax = 15 + Math.log(8) / (Math.log(6.4) / 27); // hz_to_mel(8000)
    const binHz = SAMPLE_RATE / N_FFT; // 40 Hz
    for (let m = 0; m < N_MELS; m++) {
      const [f0, f1, f2] = [m, m + 1, m + 2].map((i) => melToHz((melMax * i) / (N_MELS + 1))) as [number, number, number];
      const row = fb.subarray(m * N_FREQ, (m + 1) * N_FREQ);
      let peak = 0, area = 0;
      row.forEach((w, k) => {
        assert.ok(w >= 0);
        if (w > 0) assert.ok(k * binHz > f0 && k * binHz < f2, `filter ${m} bin ${k} outside its band`);
        if (w > row[peak]!) peak = k;
        area += w * binHz;
      });
      assert.ok(Math.abs(peak * binHz - f1) <= binHz / 2 + 1e-9, `filter ${m} peaks at ${peak * binHz} Hz, centre ${f1}`);
      assert.ok(row[peak]! <= 2 / (f2 - f0) + 1e-9 && row[peak]! > 0);
      // the sampled triangle's area approaches 1 once it spans many 40 Hz bins
      if (f2 - f0 > 20 * binHz) assert.ok(Math.abs(area - 1) < 0.01, `filter ${m} area ${area}`);
    }
  });
});

describe('log-mel window', () => {
  test('1.5 s clip zero-padded to 30 s matches the reference (incl. reflect padding at the start)', () => {
    const c = refCase('start');
    assertMatches(logMelWindow(signalFor(c)), c);
  });

  test('full 30 s window with the clip at the very end matches the reference (reflect padding at the end)', () => {
    const c = refCase('end');
    assertMatches(logMelWindow(signalFor(c)), c);
  });

  test('the second window of a 60 s signal is taken from offset 480000', () => {
    const c = refCase('end');
    const x = signalFor(c, 2 * WINDOW_SAMPLES, WINDOW_SAMPLES + c.burstAt);
    const windows = logMelWindows(x);
    assert.equal(windows.length, 2);
    assert.ok(windows[0]!.every((v) => v === SILENCE_VALUE));
    assertMatches(windows[1]!, c);
    assert.deepEqual(logMelWindow(x, WINDOW_SAMPLES), windows[1]);
  });

  test('frames after the clip sit at the clamp floor: window max - 8 in log units, i.e. max output - 2', () => {
    const c = refCase('start');
    const mel = logMelWindow(signalFor(c));
    let max = -Infinity;
    for (const v of mel) max = Math.max(max, v);
    // Frame t spans samples 160t-200 .. 160t+199: from frame 152 on it starts past the last sample, 23999.
    const floor = mel[152]!;
    assert.ok(Math.abs(floor - (max - 2)) < 1e-6, `floor ${floor}, max ${max}`);
    for (let t = 152; t < WINDOW_FRAMES; t++) {
      for (let m = 0; m < N_MELS; m++) assert.equal(mel[m * WINDOW_FRAMES + t], floor);
    }
    assert.ok(mel[151]! > floor, 'frame 151 still sees the clip');
  });

  test('silence gives (log10(1e-10) + 4) / 4 = -1.5 everywhere, however short the input', () => {
    assert.equal(SILENCE_VALUE, (Math.log10(1e-10) + 4) / 4);
    for (const x of [new Float32Array(0), new Float32Array(1000), new Float32Array(WINDOW_SAMPLES)]) {
      const mel = logMelWindow(x);
      assert.equal(mel.length, N_MELS * WINDOW_FRAMES);
      assert.ok(mel.every((v) => v === SILENCE_VALUE));
    }
    assert.ok(logMelWindow(new Float32Array(10), 480000).every((v) => v === SILENCE_VALUE), 'offset past the end');
  });

  test('windows: one per started 30 s, none for no audio; out buffer reused; input untouched', () => {
    assert.deepEqual(logMelWindows(new Float32Array(0)), []);
    assert.equal(logMelWindows(new Float32Array(WINDOW_SAMPLES)).length, 1);
    const x = new Float32Array(WINDOW_SAMPLES + 1);
    x[WINDOW_SAMPLES] = 0.5;
    const windows = logMelWindows(x);
    assert.equal(windows.length, 2);
    assert.ok(windows[1]!.some((v) => v !== SILENCE_VALUE), 'the one trailing sample is seen');
    const c = refCase('start');
    const sig = signalFor(c);
    const copy = sig.slice();
    const out = new Float32Array(N_MELS * WINDOW_FRAMES).fill(123);
    assert.equal(logMelWindow(sig, 0, out), out);
    assertMatches(out, c);
    assert.deepEqual(sig, copy);
    assert.throws(() => logMelWindow(sig, -1), RangeError);
    assert.throws(() => logMelWindow(sig, 0, new Float32Array(10)), RangeError);
  });
});
