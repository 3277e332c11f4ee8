import type { CropBox, MuseTalkRect } from './face-track';

/**
 * MuseTalk 1.5's blend mask and composite (musetalk/utils/blending.py get_image_prepare_material and
 * get_image_blending as scripts/realtime_inference.py calls them, with FaceParsing in "jaw" mode and
 * cheek widths 90), without its BiSeNet face parser: the parsing is rasterised from 68 landmarks
 * (iBUG 300-W, 0-based). Everything after the label map follows MuseTalk's arithmetic to the bit
 * (cv2.dilate/erode, cv2.GaussianBlur's fixed-point 8-bit path, PIL's paste), checked against
 * scripts/reference/musetalk_blending.py in worker/test/blend-mask.test.ts. One substitution besides
 * the parser: face_seg's PIL bicubic resize of the 512x512 parsing to the expanded crop's size is a
 * pixel-centre nearest-neighbour resize here (exact in integers in both languages). PIL's
 * antialiased bicubic would turn each 0/255 edge into a ramp about two crop pixels wide (and move it
 * by under a pixel), which the blur after it, a tenth of the crop wide, mostly absorbs: on the test's
 * faces (96, 185, 301 px wide) the blurred masks differ by at most 14, 7, 6 levels, under 0.2 on average.
 */

/** The side of FaceParsing's square parsing. */
export const PARSING_SIZE = 512;
/** BiSeNet's labels that the jaw mode reads. */
export const LABEL = { skin: 1, nose: 10, mouth: 11, upperLip: 12, lowerLip: 13 } as const;
/** get_image_prepare_material's defaults as the realtime path uses them. */
const EXPAND = 1.5;
const UPPER_BOUNDARY_RATIO = 0.5;
const CHEEK_WIDTH = 90;

/**
 * Polygons over the landmarks, painted in this order: the jaw closed over the brows; the bridge top
 * (27) down the nose sides and across the lower nose (31-35); the outer lips, one label for lips and
 * mouth since the jaw mode adds 11-13 alike.
 */
const POLYGONS: ReadonlyArray<readonly [number, readonly number[]]> = [
  [LABEL.skin, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 26, 25, 24, 23, 22, 21, 20, 19, 18, 17]],
  [LABEL.nose, [27, 31, 32, 33, 34, 35]],
  [LABEL.upperLip, [48, 49, 50, 51, 52, 53, 54, 55, 56, 57, 58, 59]],
];

/** A square in frame pixels (x2/y2 exclusive), possibly reaching past the frame. */
export interface ExpandedCropBox extends MuseTalkRect {
  side: number;
}

/** get_crop_box: the square of side 2s (s = max(w, h) // 2 * expand, truncated) round the rect's centre. */
export function expandedCropBox(rect: MuseTalkRect, expand = EXPAND): ExpandedCropBox {
  const [cx, cy] = [Math.floor((rect.x1 + rect.x2) / 2), Math.floor((rect.y1 + rect.y2) / 2)];
  const s = Math.trunc(Math.floor(Math.max(rect.x2 - rect.x1, rect.y2 - rect.y1) / 2) * expand);
  return { x1: cx - s, y1: cy - s, x2: cx + s, y2: cy + s, side: 2 * s };
}

/** cvRound: round half to even. */
function roundEven(v: number): number {
  const r = Math.round(v);
  return r - v === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/**
 * Landmark i (pixel-centre frame coordinates) in the expanded crop's 512x512 parsing, which
 * FaceParsing resizes to 512 with pixel centres aligned: (x - box.x1 + 0.5) * 512 / side - 0.5.
 */
export function landmarksInParsing(landmarks: Float32Array, box: ExpandedCropBox): Float64Array {
  if (landmarks.length !== 136) throw new RangeError(`68 landmarks are 136 values, not ${landmarks.length}`);
  const scale = PARSING_SIZE / box.side;
  return Float64Array.from(landmarks, (v, i) => (v - (i % 2 === 0 ? box.x1 : box.y1) + 0.5) * scale - 0.5);
}

/**
 * Paints `label` where a pixel's centre lies inside the polygon (`points` as x,y pairs): on row j the
 * edges crossing y = j with y in [min, max) of the edge (so a vertex counts once), and pixel i is
 * inside when x_enter <= i < x_leave, pairs of crossings taken in order (even-odd). Edges shared by
 * two polygons give each pixel to exactly one of them. cv2.fillPoly also paints the pixels its
 * outline passes through, so it covers up to about a pixel more all round.
 */
export function fillPolygon(labels: Uint8Array, size: number, points: ArrayLike<number>, label: number): void {
  const n = points.length / 2;
  let [top, bottom] = [Infinity, -Infinity];
  for (let k = 0; k < n; k++) [top, bottom] = [Math.min(top, points[2 * k + 1]!), Math.max(bottom, points[2 * k + 1]!)];
  const crossings: number[] = [];
  for (let j = Math.max(0, Math.ceil(top)); j <= Math.min(size - 1, Math.floor(bottom)); j++) {
    crossings.length = 0;
    for (let k = 0; k < n; k++) {
      const [xa, ya] = [points[2 * k]!, points[2 * k + 1]!];
      const [xb, yb] = [points[(2 * k + 2) % (2 * n)]!, points[(2 * k + 3) % (2 * n)]!];
      if ((ya <= j && j < yb) || (yb <= j && j < ya)) crossings.push(xa + ((j - ya) * (xb - xa)) / (yb - ya));
    }
    crossings.sort((a, b) => a - b);
    for (let k = 0; k + 1 < crossings.length; k += 2) {
      const from = Math.max(0, Math.ceil(crossings[k]!));
      const to = Math.min(size, Math.ceil(crossings[k + 1]!));
      if (to > from) labels.fill(label, j * size + from, j * size + to);
    }
  }
}

/** The stand-in for BiSeNet's 512x512 parsing of the expanded crop: skin, then nose and lips over it. */
export function landmarkLabelMap(landmarks: Float32Array, box: ExpandedCropBox): Uint8Array {
  const points = landmarksInParsing(landmarks, box);
  const labels = new Uint8Array(PARSING_SIZE * PARSING_SIZE);
  for (const [label, index] of POLYGONS) {
    fillPolygon(labels, PARSING_SIZE, index.flatMap((i) => [points[2 * i]!, points[2 * i + 1]!]), label);
  }
  return labels;
}

/** A structuring element as one run per row: row offset and first/last column offset from the anchor. */
interface KernelRow {
  dy: number;
  from: number;
  to: number;
}

/** A 0/1 kernel (rows of equal width, each one contiguous run or empty) as runs about its centre, the anchor OpenCV defaults to. */
function kernelRows(kernel: Uint8Array, width: number, height: number): KernelRow[] {
  const rows: KernelRow[] = [];
  for (let r = 0; r < height; r++) {
    const row = kernel.subarray(r * width, (r + 1) * width);
    const from = row.indexOf(1);
    if (from >= 0) rows.push({ dy: r - (height >> 1), from: from - (width >> 1), to: row.lastIndexOf(1) - (width >> 1) });
  }
  return rows;
}

/** FaceParsing's dilation kernel (33x33): a cone widening downwards from row 10 to 21 wide at row 20, then 12 rows of 21. */
export function coneKernel(): Uint8Array {
  const [coneHeight, total] = [21, 33];
  const centre = total >> 1;
  const kernel = new Uint8Array(total * total);
  for (let row = coneHeight >> 1; row < total; row++) {
    const half = Math.min(row, coneHeight - 1) - (coneHeight >> 1);
    kernel.fill(1, row * total + centre - half, row * total + centre + half + 1);
  }
  return kernel;
}

/** cv2.getStructuringElement(MORPH_ELLIPSE, (width, height)): per row dy from the middle, half-width round(c * sqrt(1 - dy²/r²)). */
export function ellipseKernel(width: number, height: number): Uint8Array {
  const [r, c] = [height >> 1, width >> 1];
  const kernel = new Uint8Array(width * height);
  for (let i = 0; i < height; i++) {
    const dy = i - r;
    if (Math.abs(dy) > r) continue;
    const dx = roundEven(c * Math.sqrt((r * r - dy * dy) * (r ? 1 / (r * r) : 0)));
    kernel.fill(1, i * width + Math.max(c - dx, 0), i * width + Math.min(c + dx + 1, width));
  }
  return kernel;
}

/**
 * cv2.dilate (`hit` 255) or cv2.erode (`hit` 0) of a 0/255 square image: dst(x, y) is `hit` when any
 * kernel pixel reads src(x + dx, y + dy) == hit, the kernel not mirrored (OpenCV's convention).
 * Pixels past the border are ignored, as OpenCV's default border value makes them. Each row keeps
 * the next column holding `hit`, so a kernel row costs one look-up.
 */
function morph(src: Uint8Array, size: number, rows: readonly KernelRow[], hit: 0 | 255): Uint8Array {
  const next = new Int32Array(size * (size + 1));
  const last = new Int32Array(size).fill(-1);
  for (let y = 0; y < size; y++) {
    const base = y * (size + 1);
    next[base + size] = size;
    for (let x = size - 1; x >= 0; x--) {
      next[base + x] = src[y * size + x] === hit ? x : next[base + x + 1]!;
      if (last[y] === -1 && next[base + x] === x) last[y] = x;
    }
  }
  const dst = new Uint8Array(size * size).fill(255 - hit);
  for (let y = 0; y < size; y++) {
    for (const { dy, from, to } of rows) {
      const sy = y + dy;
      // A source row without `hit` (most rows of a dilation) cannot change the output row, and
      // only columns within the kernel's reach of its first and last `hit` can.
      if (sy < 0 || sy >= size || last[sy] === -1) continue;
      const base = sy * (size + 1);
      const end = Math.min(size - 1, last[sy]! - from);
      for (let x = Math.max(0, next[base]! - to); x <= end; x++) {
        const a = x + from < 0 ? 0 : x + from;
        const b = x + to > size - 1 ? size - 1 : x + to;
        if (a <= b && next[base + a]! <= b) dst[y * size + x] = hit;
      }
    }
  }
  return dst;
}

const CONE_ROWS = kernelRows(coneKernel(), 33, 33);
const CHEEK_ROWS = kernelRows(ellipseKernel(35, 3), 35, 3);

/** FaceParsing's cheek mask (cv2.rectangle, both corners inclusive): columns <= 256 - 90 and >= 256 + 90. */
function onCheek(x: number): boolean {
  return x <= PARSING_SIZE / 2 - CHEEK_WIDTH || x >= PARSING_SIZE / 2 + CHEEK_WIDTH;
}

/**
 * FaceParsing.__call__(mode="jaw") on a 512x512 label map: the skin dilated with the cone (so the
 * mask reaches down past the jaw line), on the cheek bands eroded twice with the 35x3 ellipse (so it
 * stops short of the cheeks' edges); 255 there except on the nose, and on lips and mouth; 0 elsewhere.
 */
export function jawMask(labels: Uint8Array): Uint8Array {
  const skin = labels.map((label) => (label === LABEL.skin ? 255 : 0));
  const dilated = morph(skin, PARSING_SIZE, CONE_ROWS, 255);
  const eroded = morph(morph(dilated, PARSING_SIZE, CHEEK_ROWS, 0), PARSING_SIZE, CHEEK_ROWS, 0);
  return labels.map((label, i) => {
    const face = onCheek(i % PARSING_SIZE) ? eroded[i]! : dilated[i]!;
    const lips = label >= LABEL.mouth && label <= LABEL.lowerLip;
    return (face === 255 && label !== LABEL.nose) || lips ? 255 : 0;
  });
}

/** Square nearest-neighbour resize, pixel centres aligned: output d reads input floor((d + 0.5) * n / size), in integers. */
export function resizeNearest(src: Uint8Array, n: number, size: number): Uint8Array {
  const index = Int32Array.from({ length: size }, (_, d) => Math.floor(((2 * d + 1) * n) / (2 * size)));
  const dst = new Uint8Array(size * size);
  for (let y = 0; y < size; y++) for (let x = 0; x < size; x++) dst[y * size + x] = src[index[y]! * n + index[x]!]!;
  return dst;
}

/**
 * The 8-bit kernel cv2.GaussianBlur uses for `n` taps and sigma 0 (smooth.dispatch.cpp): fixed
 * binomial weights up to 7 taps, else exp(-x²/2σ²) with σ = 0.15 n + 0.35, normalised, turned into
 * 1/256 steps with the rounding error carried from tap to tap, the centre taking what is left.
 */
export function gaussianKernel8(n: number): Int32Array {
  const fixed: Record<number, number[]> = { 1: [1], 3: [0.25, 0.5, 0.25], 5: [0.0625, 0.25, 0.375, 0.25, 0.0625], 7: [0.03125, 0.109375, 0.21875, 0.28125, 0.21875, 0.109375, 0.03125] };
  let weights = fixed[n];
  if (!weights) {
    const sigma = n * 0.15 + 0.35;
    const scale = -0.125 / (sigma * sigma);
    const side = Array.from({ length: (n - 1) >> 1 }, (_, i) => Math.exp((1 - n + 2 * i) ** 2 * scale));
    const inverse = 1 / (side.reduce((a, b) => a + b, 0) * 2 + 1);
    weights = [...side, 1, ...side.slice().reverse()].map((v) => v * inverse);
  }
  const kernel = new Int32Array(n);
  let [error, sum] = [0, 0];
  for (let i = 0; i < n >> 1; i++) {
    const adjusted = weights[i]! * 256 + error;
    const v = roundEven(adjusted);
    error = adjusted - v;
    kernel[i] = kernel[n - 1 - i] = v;
    sum += 2 * v;
  }
  kernel[n >> 1] = 256 - sum;
  return kernel;
}

/** BORDER_REFLECT_101: ... 2 1 | 0 1 2 ... n-1 | n-2 ... */
function reflect101(i: number, n: number): number {
  if (n === 1) return 0;
  while (i < 0 || i >= n) i = i < 0 ? -i : 2 * n - 2 - i;
  return i;
}

/**
 * cv2.GaussianBlur(src, (k, k), 0) on a uint8 image, as OpenCV's bit-exact 8-bit path computes it:
 * a horizontal pass in 1/256 steps, a vertical one in 1/65536 steps, then (v + 32768) >> 16.
 */
export function gaussianBlur(src: Uint8Array, width: number, height: number, k: number): Uint8Array {
  const kernel = gaussianKernel8(k);
  const r = k >> 1;
  // Border indices looked up once, not per tap; rows that are all zero blur to zero (the mask's
  // upper half always is), so they are skipped.
  const xs = Int32Array.from({ length: width + 2 * r }, (_, i) => reflect101(i - r, width));
  const ys = Int32Array.from({ length: height + 2 * r }, (_, i) => reflect101(i - r, height));
  const rows = new Int32Array(width * height);
  const empty = new Uint8Array(height);
  for (let y = 0; y < height; y++) {
    const line = src.subarray(y * width, (y + 1) * width);
    if (line.every((v) => v === 0)) {
      empty[y] = 1;
      continue;
    }
    for (let x = 0; x < width; x++) {
      let v = 0;
      for (let i = 0; i < k; i++) v += kernel[i]! * line[xs[x + i]!]!;
      rows[y * width + x] = v;
    }
  }
  const dst = new Uint8Array(width * height);
  for (let y = 0; y < height; y++) {
    let any = false;
    for (let i = 0; i < k && !any; i++) any = empty[ys[y + i]!] === 0;
    if (!any) continue;
    for (let x = 0; x < width; x++) {
      let v = 0;
      for (let i = 0; i < k; i++) v += kernel[i]! * rows[ys[y + i]! * width + x]!;
      dst[y * width + x] = (v + 32768) >> 16;
    }
  }
  return dst;
}

/** get_image_prepare_material's blur size: int(0.1 * side // 2 * 2) + 1. */
export function blurKernelSize(side: number): number {
  return Math.floor((0.1 * side) / 2) * 2 + 1;
}

/**
 * The rest of get_image_prepare_material from the jaw-mode parsing: resized to the expanded crop,
 * kept inside the face rect only, zeroed above the crop's middle row (int(side * 0.5)), blurred.
 * Returns the mask over the expanded crop, side x side.
 */
export function maskOverExpandedCrop(parsed: Uint8Array, rect: MuseTalkRect, box: ExpandedCropBox = expandedCropBox(rect)): Uint8Array {
  const { side } = box;
  const resized = resizeNearest(parsed, PARSING_SIZE, side);
  const top = Math.trunc(side * UPPER_BOUNDARY_RATIO);
  const kept = new Uint8Array(side * side);
  const [x0, x1] = [Math.max(0, rect.x1 - box.x1), Math.min(side, rect.x2 - box.x1)];
  for (let y = Math.max(top, rect.y1 - box.y1); y < Math.min(side, rect.y2 - box.y1); y++) {
    if (x1 > x0) kept.set(resized.subarray(y * side + x0, y * side + x1), y * side + x0);
  }
  return gaussianBlur(kept, side, side, blurKernelSize(side));
}

/**
 * The mask over `crop` (the face rect clipped to the frame), size x size: the expanded-crop mask
 * sampled bilinearly at each crop-space pixel's centre, as drawAlpha (shared/frames.ts) samples it
 * back over the crop box. Only the face box matters: outside it get_image_blending pastes the
 * original pixels back, so the blur that spills past the box changes nothing there.
 */
export function cropSpaceMask(mask: Uint8Array, box: ExpandedCropBox, crop: CropBox, size: number): Uint8Array {
  const { side } = box;
  const at = (origin: number, extent: number, d: number): number => Math.min(side - 1, Math.max(0, origin + ((d + 0.5) * extent) / size - 0.5));
  const out = new Uint8Array(size * size);
  for (let j = 0; j < size; j++) {
    const fy = at(crop.y - box.y1, crop.height, j);
    const y0 = Math.floor(fy);
    const [r0, r1, wy] = [y0 * side, Math.min(side - 1, y0 + 1) * side, fy - y0];
    for (let i = 0; i < size; i++) {
      const fx = at(crop.x - box.x1, crop.width, i);
      const x0 = Math.floor(fx);
      const [c1, wx] = [Math.min(side - 1, x0 + 1), fx - x0];
      const upper = mask[r0 + x0]! * (1 - wx) + mask[r0 + c1]! * wx;
      const lower = mask[r1 + x0]! * (1 - wx) + mask[r1 + c1]! * wx;
      out[j * size + i] = Math.round(upper * (1 - wy) + lower * wy);
    }
  }
  return out;
}

/**
 * MuseTalk 1.5's blend mask for one frame in crop space (size x size over `crop`): landmarks
 * (136 values x0, y0, x1, y1, ... in frame pixels) rasterised into the parsing, jaw mode,
 * get_image_prepare_material, then resampled over the crop.
 */
export function jawBlendMask(landmarks: Float32Array, rect: MuseTalkRect, crop: CropBox, size = 256): Uint8Array {
  const box = expandedCropBox(rect);
  const mask = maskOverExpandedCrop(jawMask(landmarkLabelMap(landmarks, box)), rect, box);
  return cropSpaceMask(mask, box, crop, size);
}

/** An rgb24 image. */
export interface RgbImage {
  rgb: Uint8Array;
  width: number;
  height: number;
}

/** Paste.c's DIV255: v / 255 rounded to nearest, in shifts. */
function div255(v: number): number {
  const t = v + 128;
  return ((t >> 8) + t) >> 8;
}

/**
 * get_image_blending on an rgb24 frame (a new frame is returned; for pictures and checks: production
 * composites in ffmpeg): the face (already at the rect's
 * size) pasted into the expanded crop, which is pasted into the frame through the mask, PIL's L-mask
 * paste clipped to the frame: per channel DIV255(frame * (255 - m) + source * m). Where the source is
 * the frame's own pixel this gives the pixel back exactly, so only the face rect changes.
 */
export function blendRgb(frame: Uint8Array, width: number, height: number, face: RgbImage, rect: MuseTalkRect, maskOverCrop: Uint8Array): Uint8Array {
  const box = expandedCropBox(rect);
  if (face.width !== rect.x2 - rect.x1 || face.height !== rect.y2 - rect.y1) throw new RangeError(`face ${face.width}x${face.height} is not the rect's size`);
  if (maskOverCrop.length !== box.side * box.side) throw new RangeError(`mask of ${maskOverCrop.length} values is not ${box.side}x${box.side}`);
  const out = frame.slice();
  // The face lands where the rect meets the expanded crop and the frame; elsewhere the source is the frame.
  const [x0, x1] = [Math.max(0, rect.x1, box.x1), Math.min(width, rect.x2, box.x2)];
  const [y0, y1] = [Math.max(0, rect.y1, box.y1), Math.min(height, rect.y2, box.y2)];
  for (let y = y0; y < y1; y++) {
    for (let x = x0; x < x1; x++) {
      const m = maskOverCrop[(y - box.y1) * box.side + (x - box.x1)]!;
      const [f, s] = [(y * width + x) * 3, ((y - rect.y1) * face.width + (x - rect.x1)) * 3];
      for (let c = 0; c < 3; c++) out[f + c] = div255(frame[f + c]! * (255 - m) + face.rgb[s + c]! * m);
    }
  }
  return out;
}
