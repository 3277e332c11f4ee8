import { decodeFrames, frameBytes, MediaError, type PixelFormat } from './ffmpeg';

/** Loop frames held in memory at most: a still (one frame) or a clip of a second or so at 720p yuv420p. */
export const LOOP_CACHE_BYTES = 64 * 1024 * 1024;

/**
 * `total` frames of a looping video: output frame i is the video's frame i mod its length. A loop
 * whose frames fit `cacheBytes` is decoded once and replayed from memory, so a still-image avatar
 * costs one ffmpeg process however long the speech; a longer loop is decoded again for each pass.
 * Every buffer yielded is the caller's own: it may paint into it.
 */
export async function* loopFrames(
  file: string,
  options: { width: number; height: number; pixelFormat: PixelFormat; loopLength: number; total: number; cacheBytes?: number; signal?: AbortSignal },
): AsyncGenerator<Buffer> {
  const { width, height, pixelFormat, total, signal } = options;
  const size = frameBytes(width, height, pixelFormat);
  const cached: Buffer[] | undefined = options.loopLength * size <= (options.cacheBytes ?? LOOP_CACHE_BYTES) ? [] : undefined;
  let index = 0;
  while (index < total) {
    if (cached && cached.length > 0) {
      const frame = Buffer.allocUnsafe(size);
      cached[index % cached.length]!.copy(frame);
      index++;
      yield frame;
      continue;
    }
    const before = index;
    for await (const frame of decodeFrames(file, { width, height, pixelFormat, maxFrames: cached ? Math.min(total, options.loopLength) : total - index, signal })) {
      if (cached) {
        cached.push(frame);
        yield Buffer.from(frame);
      } else {
        yield frame;
      }
      index++;
    }
    // An empty pass would loop for ever.
    if (index === before) throw new MediaError('media_unreadable', 'the looping video has no frames');
  }
}
