import assert from 'node:assert/strict';
import path from 'node:path';
import { before, describe, test } from 'node:test';
import { ffmpegStarts, startEncoder } from '../src/media/ffmpeg';
import { loopFrames } from '../src/media/loop-frames';
import { tempDir } from './helpers/temp-dir';

const SIZE = 32;
/** The grey level frame i of a numbered video carries; lossless, so it comes back exact. */
const level = (i: number) => 20 * (i + 1);

async function numberedVideo(file: string, frames: number): Promise<string> {
  const encoder = startEncoder({ output: file, width: SIZE, height: SIZE, fps: 25, crf: 0 });
  for (let i = 0; i < frames; i++) await encoder.write(Buffer.alloc(SIZE * SIZE * 3, level(i)));
  await encoder.finish();
  return file;
}

/** The frames' numbers as decoded, and how many decodes it took. */
async function take(file: string, loopLength: number, total: number, cacheBytes?: number) {
  const before = ffmpegStarts().frames;
  const seen: number[] = [];
  for await (const frame of loopFrames(file, { width: SIZE, height: SIZE, pixelFormat: 'rgb24', loopLength, total, cacheBytes })) {
    seen.push(Math.round(frame[SIZE * 16 * 3 + 48]! / 20) - 1);
    frame.fill(0); // the caller owns what it gets: painting it must not show in later passes
  }
  return { seen, decodes: ffmpegStarts().frames - before };
}

describe('looping frames: short loops decoded once, long loops re-read', () => {
  const dir = tempDir('loop-frames-');
  let still: string;
  let ten: string;
  before(async () => {
    still = await numberedVideo(path.join(dir, 'still.mp4'), 1);
    ten = await numberedVideo(path.join(dir, 'ten.mp4'), 10);
  });

  test('a one-frame loop (a still-image avatar) is decoded by one ffmpeg for any length', async () => {
    const { seen, decodes } = await take(still, 1, 164);
    assert.equal(seen.length, 164);
    assert.ok(seen.every((n) => n === 0));
    assert.equal(decodes, 1);
  });

  test('a loop within the budget is decoded once and replayed in order', async () => {
    const { seen, decodes } = await take(ten, 10, 25);
    assert.deepEqual(seen, [...Array(10).keys(), ...Array(10).keys(), 0, 1, 2, 3, 4]);
    assert.equal(decodes, 1);
  });

  test('a loop over the budget is decoded again for each pass, with the same frames', async () => {
    const { seen, decodes } = await take(ten, 10, 25, 9 * SIZE * SIZE * 3);
    assert.deepEqual(seen, [...Array(10).keys(), ...Array(10).keys(), 0, 1, 2, 3, 4]);
    assert.equal(decodes, 3);
  });

  test('fewer frames than the loop are decoded only as far as needed', async () => {
    const { seen, decodes } = await take(ten, 10, 4);
    assert.deepEqual(seen, [0, 1, 2, 3]);
    assert.equal(decodes, 1);
  });
});
