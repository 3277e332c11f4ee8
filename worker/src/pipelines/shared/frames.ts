/**
 * Pixel work in plain TypeScript over typed arrays: tensor layout (rgb24 crops in), the blend mask,
 * and the patches that carry each generated face, with the mask as alpha, to ffmpeg for the paste-back
 * (crops are cut by face-track.ts's cropResize).
 * Each runs once per frame, so none allocates per pixel and callers may pass the output to reuse.
 */
import { patchBytes, type PatchArea } from '../../media/render';

/**
 * rgb24 (HWC, 0-255) into a float NCHW slot in [-1, 1], optionally with the lower half black
 * (MuseTalk's masked input: its `preprocess_img` zeroes the rows from size/2 on while pixels are
 * still in [0, 1] and only then normalises, so the UNet was trained on -1 there, not on grey 0).
 */
export function toNchw(rgb: Uint8Array, size: number, out: Float32Array, offset = 0, maskLowerHalf = false): void {
  const plane = size * size;
  const half = (size >> 1) * size;
  for (let i = 0; i < plane; i++) {
    const masked = maskLowerHalf && i >= half;
    for (let ch = 0; ch < 3; ch++) out[offset + ch * plane + i] = masked ? -1 : rgb[i * 3 + ch]! / 127.5 - 1;
  }
}

/**
 * A face crop in BT.601 limited-range YUV, the colour space of ffmpeg's yuv420p frames (swscale's
 * default for rgb24): luma at the crop's size, chroma at half of it (each chroma pixel from the mean
 * of 2x2 RGB pixels), as yuv420p holds them.
 */
export interface FacePlanes {
  size: number;
  y: Uint8Array;
  u: Uint8Array;
  v: Uint8Array;
}

export function facePlanes(size: number): FacePlanes {
  const half = (size >> 1) * (size >> 1);
  return { size, y: new Uint8Array(size * size), u: new Uint8Array(half), v: new Uint8Array(half) };
}

/**
 * A float NCHW RGB image in [-1, 1] (the VAE decoder's output) to YUV planes, from row `fromRow` on
 * (rows above the blend mask are never shown: converting them is wasted).
 */
export function nchwToYuv(data: Float32Array, offset: number, out: FacePlanes, fromRow = 0): FacePlanes {
  const { size } = out;
  const plane = size * size;
  const [r0, g0, b0] = [offset, offset + plane, offset + 2 * plane];
  // RGB in [0, 255] is (x + 1) * 127.5: the offsets below fold that in.
  for (let i = Math.max(0, fromRow) * size; i < plane; i++) {
    out.y[i] = clamp(16.5 + 127.5 * (0.256788 * (data[r0 + i]! + 1) + 0.504129 * (data[g0 + i]! + 1) + 0.097906 * (data[b0 + i]! + 1)));
  }
  const half = size >> 1;
  for (let cy = Math.max(0, fromRow) >> 1; cy < half; cy++) {
    for (let cx = 0; cx < half; cx++) {
      const i = 2 * cy * size + 2 * cx;
      const j = i + size;
      // The mean of the 2x2 block, in [0, 255].
      const r = (data[r0 + i]! + data[r0 + i + 1]! + data[r0 + j]! + data[r0 + j + 1]! + 4) * 31.875;
      const g = (data[g0 + i]! + data[g0 + i + 1]! + data[g0 + j]! + data[g0 + j + 1]! + 4) * 31.875;
      const b = (data[b0 + i]! + data[b0 + i + 1]! + data[b0 + j]! + data[b0 + j + 1]! + 4) * 31.875;
      // Uint8Array stores wrap around rather than clamp, and the decoder may overshoot [-1, 1].
      out.u[cy * half + cx] = clamp(128.5 - 0.148223 * r - 0.290993 * g + 0.439216 * b);
      out.v[cy * half + cx] = clamp(128.5 + 0.439216 * r - 0.367788 * g - 0.071427 * b);
    }
  }
  return out;
}

function clamp(v: number): number {
  return v <= 0 ? 0 : v >= 255 ? 255 : v;
}

/** A rectangle in frame pixels (a face box, or where the patches go). */
export type Rect = PatchArea;

/** A yuva420p patch (media/render.ts lays it over each frame at `area`), its planes as views into `data`. */
export interface Patch {
  area: Rect;
  data: Buffer;
  y: Uint8Array;
  u: Uint8Array;
  v: Uint8Array;
  a: Uint8Array;
}

/** The planes of a patch over `area` (even position and size), in `data` or a new buffer. */
export function patchPlanes(area: Rect, data: Buffer = Buffer.alloc(patchBytes(area))): Patch {
  const luma = area.width * area.height;
  const chroma = (area.width >> 1) * (area.height >> 1);
  return {
    area, data,
    y: data.subarray(0, luma), u: data.subarray(luma, luma + chroma), v: data.subarray(luma + chroma, luma + 2 * chroma), a: data.subarray(luma + 2 * chroma, 2 * luma + 2 * chroma),
  };
}

/** The first row of a crop-space mask with anything in it (the mask's size when it is empty). */
export function firstMaskedRow(mask: Uint8Array, size: number): number {
  const at = mask.findIndex((value) => value > 0);
  return at < 0 ? size : Math.floor(at / size);
}

/**
 * Where the patches go: the smallest rectangle (even position and size, inside the frame) that holds
 * the masked part of every frame's box, mask rows mapped to the box's height. For a talking head it
 * is a little more than the lower half of one box: that is all that crosses the pipe per frame.
 */
export function patchArea(boxes: Rect[], maskTops: number[], cropSize: number, width: number, height: number): Rect {
  let [x0, y0, x1, y1] = [width, height, 0, 0];
  boxes.forEach((box, i) => {
    const top = box.y + Math.floor(((maskTops[i] ?? 0) / cropSize) * box.height);
    if (top >= box.y + box.height) return;
    [x0, y0, x1, y1] = [Math.min(x0, box.x), Math.min(y0, top), Math.max(x1, box.x + box.width), Math.max(y1, box.y + box.height)];
  });
  if (x1 <= x0 || y1 <= y0) return { x: 0, y: 0, width: 2, height: 2 }; // nothing masked: a transparent corner
  const [ex0, ey0] = [Math.max(0, x0 & ~1), Math.max(0, y0 & ~1)];
  const [ex1, ey1] = [Math.min(width & ~1, (Math.ceil(x1) + 1) & ~1), Math.min(height & ~1, (Math.ceil(y1) + 1) & ~1)];
  return { x: ex0, y: ey0, width: Math.max(2, ex1 - ex0), height: Math.max(2, ey1 - ey0) };
}

/**
 * Draws a generated face into `patch` at `box` (frame pixels): colour from `face`, alpha from
 * `mask`, both resampled bilinearly from crop space to the box; everything else in the patch is
 * transparent. Luma and alpha at full resolution, chroma at half, as yuv420p holds them. The
 * blending itself is ffmpeg's (overlay), done where the frame already is.
 */
export function drawFace(patch: Patch, face: FacePlanes, mask: Uint8Array, box: Rect): void {
  drawAlpha(patch, mask, box, face.size);
  drawColour(patch, face, box);
}

/** The alpha half of drawFace: a frame's alpha depends only on its mask and box, so callers may keep it. */
export function drawAlpha(patch: Patch, mask: Uint8Array, box: Rect, cropSize: number): void {
  patch.a.fill(0);
  samplePlanes(patch.area, 1, cropSize, box, patch.a, mask);
}

/** The colour half of drawFace. Where the alpha is 0 the colour is not shown, whatever it is. */
export function drawColour(patch: Patch, face: FacePlanes, box: Rect): void {
  samplePlanes(patch.area, 1, face.size, box, patch.y, face.y);
  samplePlanes(patch.area, 2, face.size >> 1, box, patch.u, face.u, patch.v, face.v);
}

/**
 * Fills a patch plane (and optionally a second one of the same layout, sampled at the same points)
 * where the box covers the patch, the crop plane sampled bilinearly at the patch pixel's centre; a
 * plane pixel covers `sub` x `sub` frame pixels. Weights are in 1/256 steps, so the inner loop is
 * integer arithmetic (it runs ~100,000 times a frame).
 */
function samplePlanes(area: Rect, sub: number, size: number, box: Rect, dst: Uint8Array, src: Uint8Array, dst2?: Uint8Array, src2?: Uint8Array): void {
  const stride = area.width / sub;
  const [ox, oy] = [area.x / sub, area.y / sub];
  const [scaleX, scaleY] = [size / box.width, size / box.height];
  const x0 = Math.max(ox, Math.floor(box.x / sub));
  const y0 = Math.max(oy, Math.floor(box.y / sub));
  const x1 = Math.min(ox + stride, Math.ceil((box.x + box.width) / sub));
  const y1 = Math.min(oy + area.height / sub, Math.ceil((box.y + box.height) / sub));
  if (x1 <= x0 || y1 <= y0) return;
  // The crop columns and weight of each plane column, once per call rather than once per pixel.
  const n = x1 - x0;
  const left = new Int32Array(n);
  const right = new Int32Array(n);
  const wx = new Int32Array(n);
  for (let k = 0; k < n; k++) {
    const fx = cropCoord((x0 + k + 0.5) * sub, box.x, scaleX, size);
    left[k] = Math.floor(fx);
    right[k] = Math.min(size - 1, left[k]! + 1);
    wx[k] = Math.round((fx - left[k]!) * 256);
  }
  for (let y = y0; y < y1; y++) {
    const fy = cropCoord((y + 0.5) * sub, box.y, scaleY, size);
    const r0 = Math.floor(fy);
    const row0 = r0 * size;
    const row1 = Math.min(size - 1, r0 + 1) * size;
    const wy = Math.round((fy - r0) * 256);
    const out = (y - oy) * stride + (x0 - ox);
    for (let k = 0; k < n; k++) {
      const a = row0 + left[k]!;
      const b = row0 + right[k]!;
      const c = row1 + left[k]!;
      const d = row1 + right[k]!;
      const w = wx[k]!;
      dst[out + k] = ((src[a]! * (256 - w) + src[b]! * w) * (256 - wy) + (src[c]! * (256 - w) + src[d]! * w) * wy + 32768) >> 16;
      if (dst2 && src2) dst2[out + k] = ((src2[a]! * (256 - w) + src2[b]! * w) * (256 - wy) + (src2[c]! * (256 - w) + src2[d]! * w) * wy + 32768) >> 16;
    }
  }
}

/** A frame coordinate (pixel centre) in crop pixels, clamped to the crop. */
function cropCoord(at: number, origin: number, scale: number, size: number): number {
  return Math.min(size - 1, Math.max(0, (at - origin) * scale - 0.5));
}
