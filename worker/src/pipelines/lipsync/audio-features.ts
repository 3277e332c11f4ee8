/**
 * MuseTalk 1.5 audio conditioning: whisper-tiny encoder hidden states -> one `audio_prompt`
 * [50, 384] per video frame, followed line by line from TMElyralab/MuseTalk (commit 0a89dec,
 * 2025-09-26):
 *
 *  - `musetalk/utils/audio_processor.py` `get_audio_feature`: audio is cut into 30 s segments
 *    (0, 480000, ...), each zero-padded to 30 s by the feature extractor (see media/mel.ts).
 *  - same file, `get_whisper_chunk`: each segment's encoder output with `output_hidden_states=True`
 *    is stacked on dim 2 -> [1, 1500, 5, 384] (embeddings + 4 encoder layers of whisper-tiny),
 *    segments are concatenated on the time axis, trimmed to the real audio, zero-padded on both
 *    sides, and sliced into 10-frame windows reshaped `b c h w -> b (c h) w` = [50, 384].
 *  - `musetalk/models/unet.py` `PositionalEncoding` (d_model 384), applied in `scripts/inference.py`
 *    and `scripts/realtime_inference.py` as `pe(whisper_batch)` right before the UNet.
 *
 * Layout expected from the encoder stage: per segment a Float32Array [1500][5][384]
 * (frame-major, then layer, then channel), i.e. hidden_states stacked on dim 2 as MuseTalk does.
 */

export const AUDIO_FPS = 50;
export const LAYERS = 5;
export const HIDDEN = 384;
/** Encoder frames per 30 s segment. */
export const SEGMENT_FRAMES = 1500;
export const SEGMENT_SAMPLES = 480000;
const SAMPLE_RATE = 16000;
/** `audio_padding_length_left` / `_right`: the defaults of inference.py and realtime_inference.py. */
export const PAD_LEFT = 2;
export const PAD_RIGHT = 2;
/** `audio_feature_length_per_frame = 2 * (left + right + 1)` audio frames per video frame. */
export const WINDOW = 2 * (PAD_LEFT + PAD_RIGHT + 1);
/** Rows of one audio prompt: WINDOW frames x LAYERS, `(c h)` with the frame outer. */
export const PROMPT_TOKENS = WINDOW * LAYERS;
export const PROMPT_SIZE = PROMPT_TOKENS * HIDDEN;

const FRAME_SIZE = LAYERS * HIDDEN;

export interface AudioFeatures {
  /** [frames, 5, 384] */
  data: Float32Array;
  frames: number;
}

/**
 * MuseTalk casts the fps with `int(fps)` before everything else (get_whisper_chunk), so 29.97
 * becomes 29; kept here so that counts and windows match the reference.
 */
function intFps(fps: number): number {
  const f = Math.trunc(fps);
  if (!Number.isFinite(fps) || f < 1) throw new RangeError(`fps must be >= 1, got ${fps}`);
  return f;
}

function checkSamples(audioSamples: number): void {
  if (!Number.isInteger(audioSamples) || audioSamples < 0) throw new RangeError(`audioSamples must be a non-negative integer, got ${audioSamples}`);
}

/** Number of 30 s segments MuseTalk makes: `range(0, len, 480000)`. */
export function segmentCount(audioSamples: number): number {
  checkSamples(audioSamples);
  return Math.ceil(audioSamples / SEGMENT_SAMPLES);
}

/**
 * Encoder frames kept: `actual_length = math.floor((librosa_length / sr) * audio_fps)`. The same
 * float64 expression as Python, so rounding at exact boundaries matches too.
 */
export function audioFrameCount(audioSamples: number): number {
  checkSamples(audioSamples);
  return Math.floor((audioSamples / SAMPLE_RATE) * AUDIO_FPS);
}

/** Video frames MuseTalk generates: `num_frames = math.floor((librosa_length / sr) * fps)`. */
export function videoFrameCount(audioSamples: number, fps = 25): number {
  checkSamples(audioSamples);
  return Math.floor((audioSamples / SAMPLE_RATE) * intFps(fps));
}

/**
 * Concatenates the per-segment hidden states ([1500, 5, 384] each, one per 30 s mel window, in
 * order) and trims them to the audio: `whisper_feature[:, :actual_length, ...]`.
 */
export function concatSegments(hidden: Float32Array[], audioSamples: number): AudioFeatures {
  const expected = segmentCount(audioSamples);
  if (hidden.length !== expected) throw new RangeError(`${audioSamples} samples make ${expected} segments, got ${hidden.length}`);
  for (const [i, h] of hidden.entries()) {
    if (h.length !== SEGMENT_FRAMES * FRAME_SIZE) throw new RangeError(`segment ${i} has ${h.length} values, expected ${SEGMENT_FRAMES * FRAME_SIZE}`);
  }
  const frames = audioFrameCount(audioSamples);
  const data = new Float32Array(frames * FRAME_SIZE);
  let filled = 0;
  for (const h of hidden) {
    const take = Math.min(SEGMENT_FRAMES, frames - filled);
    if (take <= 0) break;
    data.set(h.subarray(0, take * FRAME_SIZE), filled * FRAME_SIZE);
    filled += take;
  }
  return { data, frames };
}

let peCache: { length: number; dModel: number; pe: Float32Array } | undefined;

/**
 * `PositionalEncoding` from musetalk/models/unet.py: pe[pos, 2i] = sin(pos * div_i),
 * pe[pos, 2i+1] = cos(pos * div_i), div_i = exp(2i * -ln(10000) / d_model). Torch builds it in
 * float32; Math.fround reproduces the float32 roundings of div_term and of pos * div_term, which
 * matter more than sin/cos's own last-ulp differences (arguments reach ~49 rad).
 * Cached for the last (length, dModel) asked for: treat the result as read-only.
 */
export function positionalEncoding(length = PROMPT_TOKENS, dModel = HIDDEN): Float32Array {
  if (peCache && peCache.length === length && peCache.dModel === dModel) return peCache.pe;
  if (!Number.isInteger(length) || length < 0 || !Number.isInteger(dModel) || dModel < 2 || dModel % 2 !== 0) {
    throw new RangeError(`bad positional encoding shape ${length} x ${dModel}`);
  }
  const pe = new Float32Array(length * dModel);
  const scale = Math.fround(-Math.log(10000) / dModel);
  for (let i = 0; i < dModel; i += 2) {
    const div = Math.fround(Math.exp(Math.fround(i * scale)));
    for (let pos = 0; pos < length; pos++) {
      const arg = Math.fround(pos * div);
      pe[pos * dModel + i] = Math.sin(arg);
      pe[pos * dModel + i + 1] = Math.cos(arg);
    }
  }
  peCache = { length, dModel, pe };
  return pe;
}

/**
 * The UNet's `encoder_hidden_states` for one video frame: [50 * 384], rows `frame * 5 + layer`
 * over 10 audio frames, with the positional encoding added.
 *
 * get_whisper_chunk pads the trimmed features with `ceil(50 / fps) * left` zero frames in front and
 * `ceil(50 / fps) * 3 * right` behind, then takes rows `floor(i * 50 / fps)` .. +10 of the padded
 * sequence. At 25 fps video frame i therefore sees audio frames 2i-4 .. 2i+5, zeros outside the
 * audio. Indices outside the padded sequence fail as the source's assert does.
 */
export function audioPromptFor(features: AudioFeatures, frameIndex: number, fps = 25, out?: Float32Array): Float32Array {
  if (features.data.length < features.frames * FRAME_SIZE) throw new RangeError('features.data is shorter than features.frames');
  return fillPrompt(features.frames, (src) => features.data.subarray(src * FRAME_SIZE, (src + 1) * FRAME_SIZE), frameIndex, fps, out);
}

/** The audio frames (into the trimmed features) video frame `frameIndex` reads: [first, end), clipped to the audio. */
export function promptFrames(frames: number, frameIndex: number, fps = 25): { first: number; end: number } {
  const { audioIndex, left } = promptWindow(frames, frameIndex, fps);
  return { first: Math.max(0, audioIndex - left), end: Math.min(frames, audioIndex - left + WINDOW) };
}

function promptWindow(frames: number, frameIndex: number, fps: number): { audioIndex: number; left: number } {
  const f = intFps(fps);
  const multiplier = AUDIO_FPS / f; // whisper_idx_multiplier
  const paddingNums = Math.ceil(multiplier);
  const left = paddingNums * PAD_LEFT;
  const right = paddingNums * 3 * PAD_RIGHT;
  if (!Number.isInteger(frameIndex) || frameIndex < 0) throw new RangeError(`frameIndex must be a non-negative integer, got ${frameIndex}`);
  const audioIndex = Math.floor(frameIndex * multiplier); // index into the padded sequence
  if (audioIndex + WINDOW > left + frames + right) {
    throw new RangeError(`video frame ${frameIndex} at ${f} fps needs audio frames past the padded ${frames}-frame sequence`);
  }
  return { audioIndex, left };
}

/** audioPromptFor over any store of audio frames: `frameAt(src)` is audio frame src's [5 * 384]. */
function fillPrompt(frames: number, frameAt: (src: number) => Float32Array, frameIndex: number, fps: number, out?: Float32Array): Float32Array {
  const { audioIndex, left } = promptWindow(frames, frameIndex, fps);
  const result = out ?? new Float32Array(PROMPT_SIZE);
  if (result.length !== PROMPT_SIZE) throw new RangeError(`out must hold ${PROMPT_SIZE} values`);
  for (let w = 0; w < WINDOW; w++) {
    const src = audioIndex + w - left;
    if (src >= 0 && src < frames) result.set(frameAt(src), w * FRAME_SIZE);
    else result.fill(0, w * FRAME_SIZE, (w + 1) * FRAME_SIZE);
  }
  const pe = positionalEncoding(PROMPT_TOKENS, HIDDEN);
  for (let i = 0; i < PROMPT_SIZE; i++) result[i] = result[i]! + pe[i]!;
  return result;
}

/**
 * The same prompts as audioPromptFor(concatSegments(...)), with the whisper encoder run on each 30 s
 * window only when the first video frame that reads it comes, and a window dropped once the frames
 * have moved past it. Frames are asked for in order (a batch at a time), so at most two windows'
 * hidden states (11 MB each) are held, whatever the length of the audio: memory stays flat.
 */
export class StreamingAudioFeatures {
  readonly frames: number;
  private readonly held = new Map<number, Float32Array>();
  /** The most windows held at once. */
  peakHeld = 0;

  constructor(
    private readonly samples: Float32Array,
    /** One 30 s window's samples (from `offset`) to its hidden states [1500, 5, 384]. */
    private readonly encode: (samples: Float32Array, offset: number) => Promise<Float32Array>,
    private readonly fps = 25,
  ) {
    this.frames = audioFrameCount(samples.length);
  }

  /** Encodes the windows video frames `from`..`to` (inclusive) read, and drops those before them. */
  async prepare(from: number, to: number): Promise<void> {
    const first = promptFrames(this.frames, from, this.fps).first;
    const last = Math.max(first, promptFrames(this.frames, to, this.fps).end - 1);
    const [a, b] = [Math.floor(first / SEGMENT_FRAMES), Math.floor(last / SEGMENT_FRAMES)];
    for (const segment of this.held.keys()) if (segment < a) this.held.delete(segment);
    for (let segment = a; segment <= b && segment * SEGMENT_SAMPLES < this.samples.length; segment++) {
      if (this.held.has(segment)) continue;
      const hidden = await this.encode(this.samples, segment * SEGMENT_SAMPLES);
      if (hidden.length !== SEGMENT_FRAMES * FRAME_SIZE) throw new RangeError(`segment ${segment} has ${hidden.length} values, expected ${SEGMENT_FRAMES * FRAME_SIZE}`);
      this.held.set(segment, hidden);
      this.peakHeld = Math.max(this.peakHeld, this.held.size);
    }
  }

  /** Video frame `frameIndex`'s prompt; its windows must have been prepared. */
  promptFor(frameIndex: number, out?: Float32Array): Float32Array {
    return fillPrompt(this.frames, (src) => {
      const hidden = this.held.get(Math.floor(src / SEGMENT_FRAMES));
      if (!hidden) throw new Error(`audio frame ${src} was not prepared`);
      const at = src % SEGMENT_FRAMES;
      return hidden.subarray(at * FRAME_SIZE, (at + 1) * FRAME_SIZE);
    }, frameIndex, this.fps, out);
  }
}
