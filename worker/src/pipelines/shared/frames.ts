/**
 * Pixel work in plain TypeScript over typed arrays: tensor layout (rgb24 crops in), the blend mask,
 * and the feathered paste-back into yuv420p frames (crops are cut by face-track.ts's cropResize).
 * Each runs once per frame, so none allocates per pixel and callers may pass the output to reuse.
 */

/** A square crop in source pixels. */
export interface SquareBox {
  x: number;
  y: number;
  size: number;
}

/** rgb24 (HWC, 0-255) into a float NCHW slot in [-1, 1], optionally with the lower half zeroed (MuseTalk's masked input). */
export function toNchw(rgb: Uint8Array, size: number, out: Float32Array, offset = 0, maskLowerHalf = false): void {
  const plane = size * size;
  const half = (size >> 1) * size;
  for (let i = 0; i < plane; i++) {
    const masked = maskLowerHalf && i >= half;
    for (let ch = 0; ch < 3; ch++) out[offset + ch * plane + i] = masked ? 0 : rgb[i * 3 + ch]! / 127.5 - 1;
  }
}

/**
 * A face crop in BT.601 limited-range YUV, the colour space of ffmpeg's yuv420p frames (swscale's
 * default for rgb24), each plane at full crop resolution: chroma is subsampled only when pasted.
 */
export interface FacePlanes {
  size: number;
  y: Uint8Array;
  u: Uint8Array;
  v: Uint8Array;
}

export function facePlanes(size: number): FacePlanes {
  const plane = size * size;
  return { size, y: new Uint8Array(plane), u: new Uint8Array(plane), v: new Uint8Array(plane) };
}

/** A float NCHW RGB image in [-1, 1] (the VAE decoder's output) to YUV planes. */
export function nchwToYuv(data: Float32Array, offset: number, out: FacePlanes): FacePlanes {
  const plane = out.size * out.size;
  for (let i = 0; i < plane; i++) {
    const r = (data[offset + i]! + 1) * 127.5;
    const g = (data[offset + plane + i]! + 1) * 127.5;
    const b = (data[offset + 2 * plane + i]! + 1) * 127.5;
    // Uint8Array stores wrap around rather than clamp, and the decoder may overshoot [-1, 1].
    out.y[i] = clamp(16.5 + 0.256788 * r + 0.504129 * g + 0.097906 * b);
    out.u[i] = clamp(128.5 - 0.148223 * r - 0.290993 * g + 0.439216 * b);
    out.v[i] = clamp(128.5 + 0.439216 * r - 0.367788 * g - 0.071427 * b);
  }
  return out;
}

function clamp(v: number): number {
  return v <= 0 ? 0 : v >= 255 ? 255 : v;
}

/**
 * The blend mask in crop space (0-255): the lower part of the face, where the mouth moves, fully
 * generated; the rest kept from the source; a smooth ramp of `feather` pixels between them so no
 * seam shows. Starts a little above the middle, as MuseTalk's masks cover the upper lip.
 */
export function featheredMask(size = 256, feather = 24, top = 0.45): Uint8Array {
  const mask = new Uint8Array(size * size);
  const start = top * size;
  const side = Math.max(4, Math.round(size * 0.06));
  for (let y = 0; y < size; y++) {
    const vy = Math.min(1, Math.max(0, (y - start) / feather)) * Math.min(1, Math.max(0, (size - 1 - y) / side));
    for (let x = 0; x < size; x++) {
      const vx = Math.min(1, Math.max(0, x / side), Math.max(0, (size - 1 - x) / side));
      mask[y * size + x] = Math.round(255 * smooth(vy) * smooth(vx));
    }
  }
  return mask;
}

function smooth(t: number): number {
  return t * t * (3 - 2 * t);
}

/**
 * Pastes a generated face into a yuv420p frame (even width and height) at `box`, weighted by
 * `mask`: face and mask are resampled bilinearly to the box, luma at full and chroma at half
 * resolution. Working in the frame's own format spares a full-frame colour conversion on each side
 * of ffmpeg, and halves the bytes piped, for the price of converting one 256x256 crop.
 */
export function pasteFace(frame: Uint8Array, width: number, height: number, face: FacePlanes, mask: Uint8Array, box: SquareBox): void {
  const luma = width * height;
  const cw = width >> 1;
  const ch = height >> 1;
  pastePlanes(width, height, 1, face.size, mask, box, [[frame.subarray(0, luma), face.y]]);
  pastePlanes(cw, ch, 2, face.size, mask, box, [[frame.subarray(luma, luma + cw * ch), face.u], [frame.subarray(luma + cw * ch, luma + 2 * cw * ch), face.v]]);
}

/** Blends `pairs` of (frame plane, crop plane) over the box; a plane pixel covers `sub` x `sub` frame pixels. */
function pastePlanes(width: number, height: number, sub: number, size: number, mask: Uint8Array, box: SquareBox, pairs: [Uint8Array, Uint8Array][]): void {
  const scale = size / box.size;
  const x0 = Math.max(0, Math.floor(box.x / sub));
  const y0 = Math.max(0, Math.floor(box.y / sub));
  const x1 = Math.min(width, Math.ceil((box.x + box.size) / sub));
  const y1 = Math.min(height, Math.ceil((box.y + box.size) / sub));
  if (x1 <= x0 || y1 <= y0) return;
  // The crop column and weight of each frame column, once per call rather than once per pixel.
  const cols = new Int32Array(x1 - x0);
  const tx = new Float32Array(x1 - x0);
  for (let x = x0; x < x1; x++) {
    const fx = cropCoord((x + 0.5) * sub, box.x, scale, size);
    cols[x - x0] = Math.floor(fx);
    tx[x - x0] = fx - Math.floor(fx);
  }
  for (let y = y0; y < y1; y++) {
    const fy = cropCoord((y + 0.5) * sub, box.y, scale, size);
    const r0 = Math.floor(fy);
    const row0 = r0 * size;
    const row1 = Math.min(size - 1, r0 + 1) * size;
    const ty = fy - r0;
    for (let x = x0; x < x1; x++) {
      const c0 = cols[x - x0]!;
      const c1 = Math.min(size - 1, c0 + 1);
      const wx = tx[x - x0]!;
      const m = lerp2(mask[row0 + c0]!, mask[row0 + c1]!, mask[row1 + c0]!, mask[row1 + c1]!, wx, ty) / 255;
      if (m <= 0) continue;
      const o = y * width + x;
      for (const [dst, src] of pairs) {
        const v = lerp2(src[row0 + c0]!, src[row0 + c1]!, src[row1 + c0]!, src[row1 + c1]!, wx, ty);
        dst[o] = dst[o]! + (v - dst[o]!) * m + 0.5;
      }
    }
  }
}

/** A frame coordinate (pixel centre) in crop pixels, clamped to the crop. */
function cropCoord(at: number, origin: number, scale: number, size: number): number {
  return Math.min(size - 1, Math.max(0, (at - origin) * scale - 0.5));
}

function lerp2(a: number, b: number, c: number, d: number, tx: number, ty: number): number {
  const top = a + (b - a) * tx;
  return top + (c + (d - c) * tx - top) * ty;
}
