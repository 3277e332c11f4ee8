/**
 * OpenCV's `cv2.resize(..., interpolation=cv2.INTER_LANCZOS4)` on 8-bit images, to the bit: MuseTalk
 * resizes every face crop with it, and the UNet learned from crops made that way. Unlike image
 * libraries' Lanczos (sharp's included), OpenCV does not widen the kernel when it shrinks an image,
 * which on a detailed crop differs by tens of levels. Followed from OpenCV 4.x imgproc/resize.cpp:
 * `interpolateLanczos4` for the 8 weights in float, scaled to 11-bit fixed point
 * (INTER_RESIZE_COEF_SCALE = 2048); a horizontal pass into ints, a vertical pass rounded off 22 bits;
 * edge pixels repeated past the image's borders. Checked against OpenCV itself in
 * worker/test/musetalk-reference.test.ts.
 */

const COEF_SCALE = 2048;
const FLT_EPSILON = 1.1920928955078125e-7;
const S45 = 0.7071067811865476;
/** cos/sin pairs of the 8 taps' phase offsets, as OpenCV tabulates them. */
const CS: ReadonlyArray<readonly [number, number]> = [[1, 0], [-S45, -S45], [0, 1], [S45, -S45], [-1, 0], [S45, S45], [0, -1], [-S45, S45]];

/** Round half to even, as cvRound (lrint) does. */
function roundEven(v: number): number {
  const r = Math.round(v);
  return Math.abs(v % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/** interpolateLanczos4's float weights before scaling (OpenCV keeps them in float). */
const coeffs = new Float32Array(8);

/** interpolateLanczos4(x): the 8 weights for a sample at fraction x past tap 3, in fixed point. */
function weights(x: number, out: Int16Array, at: number): void {
  if (x < FLT_EPSILON) {
    out.fill(0, at, at + 8);
    out[at + 3] = COEF_SCALE;
    return;
  }
  const y0 = -(x + 3) * Math.PI * 0.25;
  const [s0, c0] = [Math.sin(y0), Math.cos(y0)];
  let sum = 0;
  for (let i = 0; i < 8; i++) {
    const y = -(x + 3 - i) * Math.PI * 0.25;
    coeffs[i] = (CS[i]![0] * s0 + CS[i]![1] * c0) / (y * y);
    sum = Math.fround(sum + coeffs[i]!);
  }
  const inv = Math.fround(1 / sum);
  for (let i = 0; i < 8; i++) out[at + i] = roundEven(Math.fround(coeffs[i]! * inv) * COEF_SCALE);
}

/** For each output index along one axis: the first source tap's index (sx - 3) and the 8 weights. */
function taps(srcSize: number, dstSize: number): { first: Int32Array; w: Int16Array } {
  const scale = srcSize / dstSize;
  const first = new Int32Array(dstSize);
  const w = new Int16Array(dstSize * 8);
  for (let d = 0; d < dstSize; d++) {
    const f = Math.fround((d + 0.5) * scale - 0.5);
    const s = Math.floor(f);
    first[d] = s - 3;
    weights(Math.fround(f - s), w, d * 8);
  }
  return { first, w };
}

/**
 * The `box` of an rgb24 frame (as `frame[y:y+height, x:x+width]`, its own image: edges repeat at the
 * box's borders, not from the pixels around it) resized to dstWidth x dstHeight rgb24.
 */
export function resizeLanczos4(
  rgb: Uint8Array, frameWidth: number,
  box: { x: number; y: number; width: number; height: number },
  dstWidth: number, dstHeight: number,
): Uint8Array {
  const { x: bx, y: by, width: sw, height: sh } = box;
  const h = taps(sw, dstWidth);
  const v = taps(sh, dstHeight);
  // Horizontal pass over every source row of the box: ints, dstWidth x 3 per row.
  const rowLength = dstWidth * 3;
  const rows = new Int32Array(sh * rowLength);
  for (let sy = 0; sy < sh; sy++) {
    const rowStart = ((by + sy) * frameWidth + bx) * 3;
    const out = sy * rowLength;
    for (let dx = 0; dx < dstWidth; dx++) {
      const first = h.first[dx]!;
      const wAt = dx * 8;
      let r = 0, g = 0, b = 0;
      for (let k = 0; k < 8; k++) {
        const sx = Math.min(sw - 1, Math.max(0, first + k));
        const weight = h.w[wAt + k]!;
        const p = rowStart + sx * 3;
        r += rgb[p]! * weight;
        g += rgb[p + 1]! * weight;
        b += rgb[p + 2]! * weight;
      }
      rows[out + dx * 3] = r;
      rows[out + dx * 3 + 1] = g;
      rows[out + dx * 3 + 2] = b;
    }
  }
  // Vertical pass: 8 rows each, then (v + 2^21) >> 22, clamped to 0..255.
  const result = new Uint8Array(dstHeight * rowLength);
  const rowOf = new Int32Array(8);
  for (let dy = 0; dy < dstHeight; dy++) {
    const first = v.first[dy]!;
    for (let k = 0; k < 8; k++) rowOf[k] = Math.min(sh - 1, Math.max(0, first + k)) * rowLength;
    const wAt = dy * 8;
    const out = dy * rowLength;
    for (let i = 0; i < rowLength; i++) {
      let sum = 0;
      for (let k = 0; k < 8; k++) sum += rows[rowOf[k]! + i]! * v.w[wAt + k]!;
      const value = Math.floor((sum + 2097152) / 4194304);
      result[out + i] = value < 0 ? 0 : value > 255 ? 255 : value;
    }
  }
  return result;
}
