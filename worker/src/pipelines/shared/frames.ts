/**
 * Pixel work on raw rgb24 frames, in plain TypeScript over typed arrays: tensor layout, the blend
 * mask and the feathered paste-back (crops are cut by face-track.ts's cropResize). Each runs once per frame, so none allocates per pixel and
 * callers may pass the output buffer to reuse.
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

/** A float NCHW image in [-1, 1] back to rgb24. */
export function fromNchw(data: Float32Array | Uint16Array, size: number, offset = 0, out = new Uint8Array(size * size * 3), toFloat: (v: number) => number = (v) => v): Uint8Array {
  const plane = size * size;
  for (let i = 0; i < plane; i++) {
    for (let ch = 0; ch < 3; ch++) {
      const v = (toFloat(data[offset + ch * plane + i]!) + 1) * 127.5;
      out[i * 3 + ch] = v <= 0 ? 0 : v >= 255 ? 255 : v + 0.5;
    }
  }
  return out;
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
 * Pastes a generated `size` x `size` face into the frame at `box`, weighted by `mask`: the face and
 * mask are resampled bilinearly to the box, so the frame keeps its own resolution.
 */
export function pasteFace(frame: Uint8Array, width: number, height: number, face: Uint8Array, mask: Uint8Array, size: number, box: SquareBox): void {
  const scale = size / box.size;
  const x0 = Math.max(0, Math.floor(box.x));
  const y0 = Math.max(0, Math.floor(box.y));
  const x1 = Math.min(width, Math.ceil(box.x + box.size));
  const y1 = Math.min(height, Math.ceil(box.y + box.size));
  for (let y = y0; y < y1; y++) {
    const fy = Math.min(size - 1, Math.max(0, (y - box.y + 0.5) * scale - 0.5));
    const r0 = Math.floor(fy);
    const r1 = Math.min(size - 1, r0 + 1);
    const ty = fy - r0;
    for (let x = x0; x < x1; x++) {
      const fx = Math.min(size - 1, Math.max(0, (x - box.x + 0.5) * scale - 0.5));
      const c0 = Math.floor(fx);
      const c1 = Math.min(size - 1, c0 + 1);
      const tx = fx - c0;
      const i00 = r0 * size + c0, i01 = r0 * size + c1, i10 = r1 * size + c0, i11 = r1 * size + c1;
      const m = lerp2(mask[i00]!, mask[i01]!, mask[i10]!, mask[i11]!, tx, ty) / 255;
      if (m <= 0) continue;
      const o = (y * width + x) * 3;
      for (let ch = 0; ch < 3; ch++) {
        const v = lerp2(face[i00 * 3 + ch]!, face[i01 * 3 + ch]!, face[i10 * 3 + ch]!, face[i11 * 3 + ch]!, tx, ty);
        frame[o + ch] = frame[o + ch]! + (v - frame[o + ch]!) * m + 0.5;
      }
    }
  }
}

function lerp2(a: number, b: number, c: number, d: number, tx: number, ty: number): number {
  const top = a + (b - a) * tx;
  return top + (c + (d - c) * tx - top) * ty;
}
