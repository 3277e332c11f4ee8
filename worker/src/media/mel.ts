/**
 * Whisper's log-mel front end, bit-for-bit in intent with openai/whisper `audio.py`
 * `log_mel_spectrogram` and with the Hugging Face `WhisperFeatureExtractor` that MuseTalk 1.5 calls
 * (`musetalk/utils/audio_processor.py` `get_audio_feature`, which hands the extractor one 30 s
 * segment at a time; the extractor zero-pads each segment to 480000 samples first).
 *
 * Per window: periodic Hann(400), STFT with n_fft 400 / hop 160 and reflect padding of 200 on both
 * sides (torch.stft center=True), |X|^2, drop the last frame (3001 -> 3000), Slaney mel filterbank
 * (librosa.filters.mel(sr=16000, n_fft=400, n_mels=80)), log10(max(mel, 1e-10)), clamp to
 * (window max - 8), then (x + 4) / 4. The max is taken over the whole padded window, as one
 * Whisper call does, so silence after a short clip sits at (max - 8 + 4) / 4.
 *
 * Arithmetic is float64 throughout (the reference implementations are float32), output is float32.
 */

export const SAMPLE_RATE = 16000;
export const N_FFT = 400;
export const HOP = 160;
export const N_MELS = 80;
/** Number of one-sided frequency bins, n_fft / 2 + 1. */
export const N_FREQ = N_FFT / 2 + 1;
export const WINDOW_SAMPLES = 480000;
export const WINDOW_FRAMES = 3000;
/** Value of every cell of an all-silent window: log10(1e-10) = -10 is also the max, (-10 + 4) / 4. */
export const SILENCE_VALUE = -1.5;

const PAD = N_FFT / 2;
const HALF = N_FFT / 2; // the 400-point real FFT runs as a 200-point complex FFT
const MEL_FLOOR = 1e-10;

// ---------------------------------------------------------------------------------------------
// Mel filterbank (librosa.filters.mel, htk=False, norm="slaney"): computed in float64 like librosa,
// then rounded to float32 like librosa's default dtype (and Whisper's mel_filters.npz).

const F_SP = 200 / 3; // Slaney: linear below 1 kHz, 200/3 Hz per mel
const MIN_LOG_HZ = 1000;
const MIN_LOG_MEL = MIN_LOG_HZ / F_SP;
const LOG_STEP = Math.log(6.4) / 27;

function hzToMel(hz: number): number {
  return hz >= MIN_LOG_HZ ? MIN_LOG_MEL + Math.log(hz / MIN_LOG_HZ) / LOG_STEP : hz / F_SP;
}

function melToHz(mel: number): number {
  return mel >= MIN_LOG_MEL ? MIN_LOG_HZ * Math.exp(LOG_STEP * (mel - MIN_LOG_MEL)) : F_SP * mel;
}

let filterbank: Float32Array | undefined;
/** Sparse form used by the transform: filter m covers bins lo[m]..lo[m]+len[m]-1, weights at off[m]. */
let sparse: { lo: Int32Array; len: Int32Array; off: Int32Array; w: Float64Array } | undefined;

/** The [80 x 201] filterbank, row-major (mel-major). Cached: treat it as read-only. */
export function melFilterbank(): Float32Array {
  if (filterbank) return filterbank;
  const fmax = SAMPLE_RATE / 2;
  const melMax = hzToMel(fmax);
  // librosa: mel_f = mel_to_hz(linspace(hz_to_mel(fmin), hz_to_mel(fmax), n_mels + 2))
  const melF = new Float64Array(N_MELS + 2);
  for (let i = 0; i < N_MELS + 2; i++) melF[i] = melToHz((melMax * i) / (N_MELS + 1));
  const fb = new Float32Array(N_MELS * N_FREQ);
  for (let m = 0; m < N_MELS; m++) {
    const f0 = melF[m]!, f1 = melF[m + 1]!, f2 = melF[m + 2]!;
    const enorm = 2 / (f2 - f0); // Slaney area normalisation
    for (let k = 0; k < N_FREQ; k++) {
      const f = (k * fmax) / (N_FREQ - 1); // fft_frequencies = linspace(0, sr/2, 201)
      const lower = (f - f0) / (f1 - f0);
      const upper = (f2 - f) / (f2 - f1);
      const w = Math.max(0, Math.min(lower, upper));
      fb[m * N_FREQ + k] = w * enorm;
    }
  }
  const lo = new Int32Array(N_MELS), len = new Int32Array(N_MELS), off = new Int32Array(N_MELS);
  const weights: number[] = [];
  for (let m = 0; m < N_MELS; m++) {
    let first = -1, last = -1;
    for (let k = 0; k < N_FREQ; k++) {
      if (fb[m * N_FREQ + k] !== 0) {
        if (first < 0) first = k;
        last = k;
      }
    }
    off[m] = weights.length;
    lo[m] = Math.max(first, 0);
    len[m] = first < 0 ? 0 : last - first + 1;
    for (let k = lo[m]!; k < lo[m]! + len[m]!; k++) weights.push(fb[m * N_FREQ + k]!);
  }
  sparse = { lo, len, off, w: Float64Array.from(weights) };
  filterbank = fb;
  return fb;
}

// ---------------------------------------------------------------------------------------------
// 400-point real FFT = 200-point complex FFT (even samples real, odd samples imaginary) followed
// by the usual split step. The 200-point FFT is an in-place mixed-radix decimation-in-time
// transform, radices 4·2·5·5, with the digit-reversal folded into how a frame is loaded.

const RADICES = [4, 2, 5, 5]; // innermost (first executed) stage first; product = 200

interface Plan {
  /** Frame sample index feeding complex slot p: real part from evenIdx[p], imaginary from evenIdx[p]+1. */
  evenIdx: Int32Array;
  /** Hann window pre-permuted to match evenIdx. */
  winRe: Float64Array;
  winIm: Float64Array;
  /** Per stage: twiddle W_L^(j*k) for j = 1..r-1, k < M at [(j-1)*M + k]. */
  twRe: Float64Array[];
  twIm: Float64Array[];
  /** Split-step twiddles W_400^k, k = 0..200. */
  splitRe: Float64Array;
  splitIm: Float64Array;
}

let plan: Plan | undefined;

/** Input order of a DIT FFT whose stages run innermost-first through `radices`. */
function digitReversal(n: number, radices: number[]): Int32Array {
  if (radices.length === 0) return Int32Array.of(0);
  const r = radices[radices.length - 1]!; // outermost stage: sub-transform j takes x[j + r*t]
  const m = n / r;
  const sub = digitReversal(m, radices.slice(0, -1));
  const out = new Int32Array(n);
  for (let j = 0; j < r; j++) for (let t = 0; t < m; t++) out[j * m + t] = j + r * sub[t]!;
  return out;
}

function getPlan(): Plan {
  if (plan) return plan;
  const perm = digitReversal(HALF, RADICES);
  const evenIdx = new Int32Array(HALF), winRe = new Float64Array(HALF), winIm = new Float64Array(HALF);
  // torch.hann_window(400) is periodic: 0.5 - 0.5 cos(2 pi n / 400)
  const hann = (n: number) => 0.5 - 0.5 * Math.cos((2 * Math.PI * n) / N_FFT);
  for (let p = 0; p < HALF; p++) {
    const n = 2 * perm[p]!;
    evenIdx[p] = n;
    winRe[p] = hann(n);
    winIm[p] = hann(n + 1);
  }
  const twRe: Float64Array[] = [], twIm: Float64Array[] = [];
  let m = 1;
  for (const r of RADICES) {
    const l = r * m;
    const re = new Float64Array((r - 1) * m), im = new Float64Array((r - 1) * m);
    for (let j = 1; j < r; j++) {
      for (let k = 0; k < m; k++) {
        const a = (-2 * Math.PI * j * k) / l;
        re[(j - 1) * m + k] = Math.cos(a);
        im[(j - 1) * m + k] = Math.sin(a);
      }
    }
    twRe.push(re);
    twIm.push(im);
    m = l;
  }
  const splitRe = new Float64Array(HALF + 1), splitIm = new Float64Array(HALF + 1);
  for (let k = 0; k <= HALF; k++) {
    splitRe[k] = Math.cos((-2 * Math.PI * k) / N_FFT);
    splitIm[k] = Math.sin((-2 * Math.PI * k) / N_FFT);
  }
  plan = { evenIdx, winRe, winIm, twRe, twIm, splitRe, splitIm };
  return plan;
}

const C1 = Math.cos((2 * Math.PI) / 5), C2 = Math.cos((4 * Math.PI) / 5);
const S1 = Math.sin((2 * Math.PI) / 5), S2 = Math.sin((4 * Math.PI) / 5);

/**
 * One DIT stage: sub-transforms of length m at j*m+k inside each block of l = r*m are twiddled by
 * W_l^(j*k), combined by an r-point DFT and written back to k + q*m (forward, e^{-i...}).
 */
function stage(re: Float64Array, im: Float64Array, r: number, m: number, tr: Float64Array, ti: Float64Array): void {
  const l = r * m;
  for (let b = 0; b < HALF; b += l) {
    for (let k = 0; k < m; k++) {
      const i0 = b + k;
      const a0r = re[i0]!, a0i = im[i0]!;
      // a_j = x_j * W^(jk), j >= 1
      let i = i0 + m, x = re[i]!, y = im[i]!, c = tr[k]!, s = ti[k]!;
      const a1r = x * c - y * s, a1i = x * s + y * c;
      if (r === 2) {
        re[i0] = a0r + a1r; im[i0] = a0i + a1i;
        re[i] = a0r - a1r; im[i] = a0i - a1i;
        continue;
      }
      i += m; x = re[i]!; y = im[i]!; c = tr[m + k]!; s = ti[m + k]!;
      const a2r = x * c - y * s, a2i = x * s + y * c;
      i += m; x = re[i]!; y = im[i]!; c = tr[2 * m + k]!; s = ti[2 * m + k]!;
      const a3r = x * c - y * s, a3i = x * s + y * c;
      if (r === 4) {
        const s02r = a0r + a2r, s02i = a0i + a2i, d02r = a0r - a2r, d02i = a0i - a2i;
        const s13r = a1r + a3r, s13i = a1i + a3i, d13r = a1r - a3r, d13i = a1i - a3i;
        re[i0] = s02r + s13r; im[i0] = s02i + s13i;
        re[i0 + m] = d02r + d13i; im[i0 + m] = d02i - d13r; // y1 = d02 - i d13
        re[i0 + 2 * m] = s02r - s13r; im[i0 + 2 * m] = s02i - s13i;
        re[i0 + 3 * m] = d02r - d13i; im[i0 + 3 * m] = d02i + d13r; // y3 = d02 + i d13
        continue;
      }
      i += m; x = re[i]!; y = im[i]!; c = tr[3 * m + k]!; s = ti[3 * m + k]!;
      const a4r = x * c - y * s, a4i = x * s + y * c;
      // radix 5: y1,4 = b1 -/+ i d1, y2,3 = b2 -/+ i d2
      const t1r = a1r + a4r, t1i = a1i + a4i, t2r = a2r + a3r, t2i = a2i + a3i;
      const t3r = a1r - a4r, t3i = a1i - a4i, t4r = a2r - a3r, t4i = a2i - a3i;
      const b1r = a0r + C1 * t1r + C2 * t2r, b1i = a0i + C1 * t1i + C2 * t2i;
      const b2r = a0r + C2 * t1r + C1 * t2r, b2i = a0i + C2 * t1i + C1 * t2i;
      const d1r = S1 * t3r + S2 * t4r, d1i = S1 * t3i + S2 * t4i;
      const d2r = S2 * t3r - S1 * t4r, d2i = S2 * t3i - S1 * t4i;
      re[i0] = a0r + t1r + t2r; im[i0] = a0i + t1i + t2i;
      re[i0 + m] = b1r + d1i; im[i0 + m] = b1i - d1r;
      re[i0 + 4 * m] = b1r - d1i; im[i0 + 4 * m] = b1i + d1r;
      re[i0 + 2 * m] = b2r + d2i; im[i0 + 2 * m] = b2i - d2r;
      re[i0 + 3 * m] = b2r - d2i; im[i0 + 3 * m] = b2i + d2r;
    }
  }
}

/** Power spectrum |X_k|^2, k = 0..200, of the Hann-windowed frame padded[base .. base+399]. */
function powerSpectrum(padded: Float64Array, base: number, p: Plan, re: Float64Array, im: Float64Array, power: Float64Array): void {
  const { evenIdx, winRe, winIm } = p;
  for (let q = 0; q < HALF; q++) {
    const n = base + evenIdx[q]!;
    re[q] = padded[n]! * winRe[q]!;
    im[q] = padded[n + 1]! * winIm[q]!;
  }
  let m = 1;
  for (let s = 0; s < RADICES.length; s++) {
    const r = RADICES[s]!;
    stage(re, im, r, m, p.twRe[s]!, p.twIm[s]!);
    m *= r;
  }
  // Split: X_k = E_k + W_400^k O_k with E = (Z_k + conj Z_{200-k}) / 2, O = (Z_k - conj Z_{200-k}) / 2i
  const { splitRe, splitIm } = p;
  for (let k = 0; k <= HALF; k++) {
    const ka = k === HALF ? 0 : k, kb = k === 0 ? 0 : HALF - k;
    const ar = re[ka]!, ai = im[ka]!, br = re[kb]!, bi = im[kb]!;
    const er = 0.5 * (ar + br), ei = 0.5 * (ai - bi);
    const or = 0.5 * (ai + bi), oi = -0.5 * (ar - br);
    const wr = splitRe[k]!, wi = splitIm[k]!;
    const xr = er + wr * or - wi * oi, xi = ei + wr * oi + wi * or;
    power[k] = xr * xr + xi * xi;
  }
}

// Scratch reused across calls (the worker is single-threaded JS; nothing here is re-entrant).
const padded = new Float64Array(WINDOW_SAMPLES + 2 * PAD);
const fftRe = new Float64Array(HALF), fftIm = new Float64Array(HALF), power = new Float64Array(N_FREQ);

/**
 * One 30 s window of log-mel features, [80 x 3000] bin-major (bin * 3000 + frame), from
 * samples[offset .. offset + 480000), zero-padded past the end of `samples`.
 */
export function logMelWindow(samples: Float32Array, offset = 0, out?: Float32Array): Float32Array {
  if (!Number.isInteger(offset) || offset < 0) throw new RangeError(`offset must be a non-negative integer, got ${offset}`);
  const result = out ?? new Float32Array(N_MELS * WINDOW_FRAMES);
  if (result.length !== N_MELS * WINDOW_FRAMES) throw new RangeError(`out must hold ${N_MELS * WINDOW_FRAMES} values`);
  melFilterbank();
  const fb = sparse!;
  const p = getPlan();

  // padded[PAD + i] = window sample i; torch reflect padding mirrors around the first/last sample.
  const valid = Math.max(0, Math.min(WINDOW_SAMPLES, samples.length - offset));
  padded.set(samples.subarray(offset, offset + valid), PAD);
  padded.fill(0, PAD + valid);
  for (let j = 1; j <= PAD; j++) {
    padded[PAD - j] = padded[PAD + j]!;
    padded[PAD + WINDOW_SAMPLES - 1 + j] = padded[PAD + WINDOW_SAMPLES - 1 - j]!;
  }
  // Frames that see only zeros have zero power: skip their FFT (most of a short clip's window).
  let lastNonZero = padded.length - 1;
  while (lastNonZero >= 0 && padded[lastNonZero] === 0) lastNonZero--;

  const floorLog = Math.log10(MEL_FLOOR);
  let max = -Infinity;
  for (let t = 0; t < WINDOW_FRAMES; t++) {
    const base = t * HOP;
    if (base > lastNonZero) {
      for (let m = 0; m < N_MELS; m++) result[m * WINDOW_FRAMES + t] = floorLog;
      if (floorLog > max) max = floorLog;
      continue;
    }
    powerSpectrum(padded, base, p, fftRe, fftIm, power);
    for (let m = 0; m < N_MELS; m++) {
      const lo = fb.lo[m]!, n = fb.len[m]!, off = fb.off[m]!;
      let acc = 0;
      for (let k = 0; k < n; k++) acc += fb.w[off + k]! * power[lo + k]!;
      const v = Math.log10(acc > MEL_FLOOR ? acc : MEL_FLOOR);
      result[m * WINDOW_FRAMES + t] = v;
      if (v > max) max = v;
    }
  }
  const threshold = max - 8;
  for (let i = 0; i < result.length; i++) {
    const v = result[i]!;
    result[i] = ((v > threshold ? v : threshold) + 4) / 4;
  }
  return result;
}

/**
 * Consecutive 30 s windows covering all samples, as MuseTalk splits audio
 * (`audio_processor.py` `get_audio_feature`: segments at 0, 480000, ...; none for empty audio).
 */
export function logMelWindows(samples: Float32Array): Float32Array[] {
  const windows: Float32Array[] = [];
  for (let offset = 0; offset < samples.length; offset += WINDOW_SAMPLES) windows.push(logMelWindow(samples, offset));
  return windows;
}
