import { decodeFrames } from './ffmpeg';

/**
 * The frames of a constant-rate video in reverse order, with memory bounded by one segment: the
 * video is read segment by segment from the end (seeking to each), and each segment is reversed in
 * memory. ffmpeg's own `reverse` filter would hold the whole video instead.
 */
export async function* reversedFrames(
  file: string,
  options: { width: number; height: number; fps: number; frameCount: number; segment?: number; signal?: AbortSignal },
): AsyncGenerator<Buffer> {
  const segment = options.segment ?? 25;
  for (let end = options.frameCount; end > 0; end -= segment) {
    const start = Math.max(0, end - segment);
    const frames: Buffer[] = [];
    // Seek half a frame early: frame `start` (pts start/fps) is the first at or after it, whichever
    // way the time rounds, and frame start-1 is before it.
    const startSec = start === 0 ? 0 : (start - 0.5) / options.fps;
    for await (const frame of decodeFrames(file, { width: options.width, height: options.height, startSec, maxFrames: end - start, signal: options.signal })) {
      frames.push(frame);
    }
    if (frames.length !== end - start) throw new Error(`expected ${end - start} frames from frame ${start}, decoded ${frames.length}`);
    for (let i = frames.length - 1; i >= 0; i--) yield frames[i]!;
  }
}
