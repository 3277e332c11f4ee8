/**
 * Turns per-frame faces of an avatar video (detector box + 68 landmarks) into a steady per-frame
 * crop for MuseTalk: best face per frame -> short gaps filled -> temporal smoothing -> MuseTalk's
 * face rectangle from the landmarks (with bbox_shift) -> that rectangle as the crop, inside the
 * frame, stretched to 256x256.
 *
 * All pure functions over numbers and pixels, so they are cheap to test and rerun.
 */
import { resizeLanczos4 } from './lanczos4';
import type { FaceBox } from '../../inference/face-detector';
import { LANDMARK_COUNT } from '../../inference/face-landmarks';
import type { Rect } from '../shared/frames';

export type FaceTrackErrorCode = 'no_face' | 'face_lost';

/** The video cannot be prepared: no face at all, or a face missing for longer than can be filled. */
export class FaceTrackError extends Error {
  constructor(
    readonly code: FaceTrackErrorCode,
    /** First and last frame (inclusive, 0-based) of the offending range. */
    readonly firstFrame: number,
    readonly lastFrame: number,
    message: string,
  ) {
    super(message);
    this.name = 'FaceTrackError';
  }
}

/** A detected face with its 68 landmarks (x0, y0, x1, y1, ... in source pixels, iBUG order). */
export interface FaceObservation extends FaceBox {
  landmarks: Float32Array;
}

/** A face in one frame after tracking, in source pixels. */
export interface TrackedFace {
  x: number;
  y: number;
  width: number;
  height: number;
  /** The 68 landmarks, x0, y0, x1, y1, ... */
  landmarks: Float32Array;
  /** False where the frame had no detection and the face was interpolated (or held at an end). */
  detected: boolean;
}

export interface TrackOptions {
  /** Longest run of frames without a face that is filled in (default 5); longer fails. */
  maxGapFrames?: number;
  /** Gaussian smoothing width in frames (default 2); 0 turns smoothing off. */
  smoothSigma?: number;
}

/** Per frame: the detector's x, y, width, height, then the landmarks' 136 values. */
const POINTS = LANDMARK_COUNT * 2;
const V = 4 + POINTS;

function overlap(a: FaceBox, b: FaceBox): number {
  const w = Math.min(a.x + a.width, b.x + b.width) - Math.max(a.x, b.x);
  const h = Math.min(a.y + a.height, b.y + b.height) - Math.max(a.y, b.y);
  if (w <= 0 || h <= 0) return 0;
  return (w * h) / (a.width * a.height + b.width * b.height - w * h);
}

/**
 * The face to follow in each frame: the best scoring one, except that a face overlapping the one
 * followed before (IoU > 0.3) wins over a better scoring face elsewhere, so a passer-by or a poster
 * does not take over the track for a frame.
 */
export function pickFaces<F extends FaceBox>(detections: ReadonlyArray<ReadonlyArray<F>>): Array<F | undefined> {
  let previous: F | undefined;
  return detections.map((faces) => {
    let best: F | undefined;
    let bestNear: F | undefined;
    for (const face of faces) {
      if (!best || face.score > best.score) best = face;
      if (previous && overlap(face, previous) > 0.3 && (!bestNear || face.score > bestNear.score)) bestNear = face;
    }
    const chosen = bestNear ?? best;
    if (chosen) previous = chosen;
    return chosen;
  });
}

function range(first: number, last: number): string {
  return first === last ? `frame ${first}` : `frames ${first}-${last}`;
}

/**
 * Best face per frame, gaps of up to `maxGapFrames` filled (linear interpolation between the
 * neighbouring detections; at the start or end of the video the nearest detection is held), then
 * smoothed. Throws FaceTrackError `no_face` when no frame has a face and `face_lost` naming the
 * first longer gap.
 */
export function trackFaces(detections: ReadonlyArray<ReadonlyArray<FaceObservation>>, options: TrackOptions = {}): TrackedFace[] {
  const maxGap = options.maxGapFrames ?? 5;
  const sigma = options.smoothSigma ?? 2;
  const n = detections.length;
  const picked = pickFaces(detections);
  const values = new Float64Array(n * V);
  const detected = new Uint8Array(n);
  picked.forEach((face, i) => {
    if (!face) return;
    detected[i] = 1;
    if (face.landmarks.length !== POINTS) throw new RangeError(`frame ${i}: face has ${face.landmarks.length / 2} landmarks, expected ${LANDMARK_COUNT}`);
    values.set([face.x, face.y, face.width, face.height], i * V);
    values.set(face.landmarks, i * V + 4);
  });
  if (!detected.includes(1)) {
    throw new FaceTrackError('no_face', 0, Math.max(0, n - 1), n === 0 ? 'the video has no frames' : `no face detected in any of the ${n} frames (${range(0, n - 1)})`);
  }

  const lost: Array<[number, number]> = [];
  for (let i = 0; i < n; ) {
    if (detected[i]) {
      i++;
      continue;
    }
    let end = i;
    while (end + 1 < n && !detected[end + 1]) end++;
    if (end - i + 1 > maxGap) lost.push([i, end]);
    else fillGap(values, i, end, n);
    i = end + 1;
  }
  const first = lost[0];
  if (first) {
    const more = lost.length > 1 ? `; also ${lost.slice(1, 4).map(([a, b]) => range(a, b)).join(', ')}${lost.length > 4 ? ', ...' : ''}` : '';
    throw new FaceTrackError('face_lost', first[0], first[1], `no face detected in ${range(first[0], first[1])} (${first[1] - first[0] + 1} frames; at most ${maxGap} can be filled)${more}`);
  }

  const smooth = sigma > 0 ? smoothTrack(values, n, sigma) : values;
  const out: TrackedFace[] = [];
  for (let i = 0; i < n; i++) {
    const o = i * V;
    const landmarks = Float32Array.from(smooth.subarray(o + 4, o + V));
    out.push({ x: smooth[o]!, y: smooth[o + 1]!, width: smooth[o + 2]!, height: smooth[o + 3]!, landmarks, detected: detected[i] === 1 });
  }
  return out;
}

/** Fills frames first..last from the detections either side (there is at least one). */
function fillGap(values: Float64Array, first: number, last: number, n: number): void {
  const before = first - 1;
  const after = last + 1;
  for (let i = first; i <= last; i++) {
    const t = before < 0 ? 1 : after >= n ? 0 : (i - before) / (after - before);
    const a = Math.max(before, 0) * V;
    const b = Math.min(after, n - 1) * V;
    for (let k = 0; k < V; k++) {
      const va = before < 0 ? values[b + k]! : values[a + k]!;
      const vb = after >= n ? values[a + k]! : values[b + k]!;
      values[i * V + k] = va + (vb - va) * t;
    }
  }
}

/**
 * Gaussian-weighted local linear regression over time (a LOESS of degree 1) on every value.
 * Avatar preparation sees the whole video before cropping, so a centred (non-causal) filter can be
 * used: unlike an exponential or one-euro filter it does not lag a moving head, and fitting a line
 * rather than averaging keeps it unbiased for steady motion up to the first and last frames, where
 * the window is one-sided. Inside the video it equals a plain Gaussian moving average; sigma 2
 * frames cuts white detector jitter about 2.7x and halves only oscillations faster than ~2 Hz at 25 fps.
 */
function smoothTrack(values: Float64Array, n: number, sigma: number): Float64Array {
  const radius = Math.ceil(2.5 * sigma);
  const kernel = new Float64Array(radius + 1);
  for (let d = 0; d <= radius; d++) kernel[d] = Math.exp((-d * d) / (2 * sigma * sigma));
  const out = new Float64Array(values.length);
  const t0 = new Float64Array(V);
  const t1 = new Float64Array(V);
  for (let i = 0; i < n; i++) {
    const lo = Math.max(0, i - radius);
    const hi = Math.min(n - 1, i + radius);
    let s0 = 0, s1 = 0, s2 = 0;
    t0.fill(0);
    t1.fill(0);
    for (let j = lo; j <= hi; j++) {
      const d = j - i;
      const w = kernel[Math.abs(d)]!;
      s0 += w;
      s1 += w * d;
      s2 += w * d * d;
      for (let k = 0; k < V; k++) {
        const v = values[j * V + k]! * w;
        t0[k] = t0[k]! + v;
        t1[k] = t1[k]! + v * d;
      }
    }
    // Value of the weighted least-squares line at d = 0; a single frame (n = 1) is left as is.
    const det = s0 * s2 - s1 * s1;
    for (let k = 0; k < V; k++) out[i * V + k] = det > 1e-9 ? (s2 * t0[k]! - s1 * t1[k]!) / det : values[i * V + k]!;
  }
  return out;
}

/** MuseTalk's face rectangle in source pixels (integers; x2/y2 exclusive as in frame[y1:y2, x1:x2]). */
export interface MuseTalkRect {
  x1: number;
  y1: number;
  x2: number;
  y2: number;
}

export interface CropOptions {
  /**
   * MuseTalk's bbox_shift in source pixels: moves the line that splits the crop into the kept upper
   * half and the regenerated lower half; positive = down, towards the mouth (more mouth movement).
   */
  bboxShift?: number;
  /** MuseTalk v1.5's extra_margin: pixels added below the chin (default 10). */
  extraMargin?: number;
}

type FaceGeometry = Pick<TrackedFace, 'x' | 'y' | 'width' | 'height' | 'landmarks'>;

/**
 * What MuseTalk's rectangle rules read from the 68 landmarks (iBUG numbering, integers as MuseTalk
 * truncates them): their x extent, the lowest point's y (the chin), and point 29's y.
 */
export interface LandmarkExtent {
  minX: number;
  maxX: number;
  maxY: number;
  y29: number;
}

/**
 * MuseTalk's crop rectangle from landmarks (musetalk/utils/preprocessing.py get_landmark_and_bbox,
 * then v1.5's extra_margin in scripts/inference.py): x from the leftmost to the rightmost landmark,
 * bottom at the lowest one, top as far above point 29 (moved down by bbox_shift) as the bottom is
 * below it, so that point 29 + bbox_shift sits on the crop's middle row, the upper edge of the half
 * MuseTalk masks and regenerates (extra_margin then lowers it by half the margin, in MuseTalk too).
 * An empty rectangle falls back to the detector's box, as in MuseTalk; then extra_margin goes below
 * the chin, and the bottom stops at the frame's. Two deliberate differences, both for faces at the
 * frame's edge: the top and the sides are clipped to the frame, where MuseTalk would slice from a
 * negative top (numpy wraps it around to the frame's bottom) and would fall back to the detector's
 * box when x1 < 0 (so the crop would jump as the face reaches the edge).
 */
export function rectFromLandmarks(extent: LandmarkExtent, detector: MuseTalkRect, frameWidth: number, frameHeight: number, options: CropOptions = {}): MuseTalkRect {
  const [minX, maxX, maxY, y29] = [extent.minX, extent.maxX, extent.maxY, extent.y29].map(Math.trunc) as [number, number, number, number];
  const mid = y29 + Math.trunc(options.bboxShift ?? 0);
  let [x1, y1, x2, y2] = [minX, mid - (maxY - mid), maxX, maxY];
  if (y2 - y1 <= 0 || x2 - x1 <= 0) [x1, y1, x2, y2] = [detector.x1, detector.y1, detector.x2, detector.y2];
  y2 = Math.min(y2 + (options.extraMargin ?? 10), frameHeight);
  return { x1: Math.max(0, x1), y1: Math.max(0, y1), x2: Math.min(frameWidth, x2), y2 };
}

/** What MuseTalk's rules read from 68 landmarks (x0, y0, x1, y1, ...). */
export function landmarkExtent(landmarks: Float32Array): LandmarkExtent {
  let minX = Infinity, maxX = -Infinity, maxY = -Infinity;
  for (let i = 0; i < landmarks.length; i += 2) {
    minX = Math.min(minX, landmarks[i]!);
    maxX = Math.max(maxX, landmarks[i]!);
    maxY = Math.max(maxY, landmarks[i + 1]!);
  }
  return { minX, maxX, maxY, y29: landmarks[2 * 29 + 1]! };
}

/** MuseTalk's crop rectangle for a tracked face: its landmarks, the detector's box as the fallback. */
export function museTalkRect(face: FaceGeometry, frameWidth: number, frameHeight: number, options: CropOptions = {}): MuseTalkRect {
  const extent = landmarkExtent(face.landmarks);
  const detector = { x1: Math.round(face.x), y1: Math.round(face.y), x2: Math.round(face.x + face.width), y2: Math.round(face.y + face.height) };
  return rectFromLandmarks(extent, detector, frameWidth, frameHeight, options);
}

/**
 * The range of bbox_shift MuseTalk suggests: "[-(y30 - y29) ~ (y29 - y28)]" on its truncated
 * landmarks, each averaged over the frames and truncated: about one nose-bridge step each way.
 */
export function bboxShiftRange(track: ReadonlyArray<Pick<FaceGeometry, 'landmarks'>>): { min: number; max: number } {
  if (track.length === 0) return { min: 0, max: 0 };
  let minus = 0, plus = 0;
  for (const { landmarks } of track) {
    const y = (i: number) => Math.trunc(landmarks[2 * i + 1]!);
    minus += y(30) - y(29);
    plus += y(29) - y(28);
  }
  return { min: -Math.trunc(minus / track.length), max: Math.trunc(plus / track.length) };
}

/** A crop in source pixels, entirely inside the frame (integers): where the face is cut and pasted back. */
export type CropBox = Rect;

/**
 * MuseTalk's rectangle as the crop, as MuseTalk uses it: it is stretched to 256x256 (about 0.8
 * wide:tall on a frontal face) and the generated face is stretched back into the same rectangle,
 * so the face fills the crop as it did in training and landmark 29 + bbox_shift stays on the middle
 * row. At least a pixel each way.
 */
export function rectCrop(rect: MuseTalkRect, frameWidth: number, frameHeight: number): CropBox {
  const x = Math.min(Math.max(0, rect.x1), frameWidth - 1);
  const y = Math.min(Math.max(0, rect.y1), frameHeight - 1);
  return { x, y, width: Math.max(1, Math.min(rect.x2, frameWidth) - x), height: Math.max(1, Math.min(rect.y2, frameHeight) - y) };
}

/**
 * Cuts `box` out of an rgb24 frame and stretches it to size x size rgb24 as MuseTalk does:
 * cv2.resize with INTER_LANCZOS4, reproduced to the bit (lanczos4.ts).
 */
export function cropResize(rgb: Uint8Array, width: number, height: number, box: CropBox, size = 256): Uint8Array {
  if (box.x < 0 || box.y < 0 || box.width < 1 || box.height < 1 || box.x + box.width > width || box.y + box.height > height) {
    throw new RangeError(`crop ${box.width}x${box.height} at (${box.x}, ${box.y}) is not inside the ${width}x${height} frame`);
  }
  return resizeLanczos4(rgb, width, box, size, size);
}
