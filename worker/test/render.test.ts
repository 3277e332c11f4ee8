import assert from 'node:assert/strict';
import path from 'node:path';
import { before, describe, test } from 'node:test';
import { decodeFrames, ffmpegStarts, frameBytes, startEncoder } from '../src/media/ffmpeg';
import { patchBytes, renderCommand, startRender, type PatchArea } from '../src/media/render';
import { makeClip } from './helpers/media-fixtures';
import { tempDir } from './helpers/temp-dir';

const [W, H] = [64, 48];
const LOOP = 5;
const TOTAL = 2 * LOOP + 3; // two passes over the loop and part of a third
const AREA: PatchArea = { x: 16, y: 8, width: 32, height: 24 };
/** Grey levels that name a loop frame and a patch, so every output frame says what it was made of. */
const loopLevel = (k: number) => 30 + 20 * k;
const patchLevel = (i: number) => 40 + 10 * i;

/** A patch whose left half is opaque, next quarter half-transparent, last quarter transparent. */
function patch(i: number): Buffer {
  const data = Buffer.alloc(patchBytes(AREA), 128);
  const luma = AREA.width * AREA.height;
  data.fill(patchLevel(i), 0, luma);
  const alpha = data.subarray(patchBytes(AREA) - luma);
  for (let y = 0; y < AREA.height; y++) {
    for (let x = 0; x < AREA.width; x++) alpha[y * AREA.width + x] = x < 16 ? 255 : x < 24 ? 128 : 0;
  }
  return data;
}

describe('render: the avatar loop, a patch per frame laid over it, encoded in one ffmpeg', () => {
  const dir = tempDir('render-');
  let loopVideo: string;
  let audio: string;
  before(async () => {
    loopVideo = path.join(dir, 'loop.mp4');
    const encoder = startEncoder({ output: loopVideo, width: W, height: H, fps: 25, crf: 0, pixelFormat: 'yuv420p' });
    for (let k = 0; k < LOOP; k++) await encoder.write(Buffer.alloc(frameBytes(W, H, 'yuv420p'), 128).fill(loopLevel(k), 0, W * H));
    await encoder.finish();
    audio = makeClip(dir, { seconds: TOTAL / 25, video: false, name: 'speech.wav' });
  });

  /** Renders TOTAL frames losslessly and returns the luma at four spots of each output frame. */
  async function render(cacheBytes?: number) {
    const output = path.join(dir, `out-${cacheBytes ?? 'cached'}.mp4`);
    const before = ffmpegStarts();
    const renderer = startRender({ loopVideo, loopFrames: LOOP, width: W, height: H, fps: 25, total: TOTAL, area: AREA, audio, output, crf: 0, cacheBytes });
    for (let i = 0; i < TOTAL; i++) await renderer.write(patch(i));
    await renderer.finish();
    const started = { render: ffmpegStarts().render - before.render, frames: ffmpegStarts().frames - before.frames };
    const spots: Array<{ opaque: number; half: number; clear: number; outside: number }> = [];
    const at = (frame: Buffer, x: number, y: number) => frame[y * W + x]!;
    for await (const frame of decodeFrames(output, { width: W, height: H, pixelFormat: 'yuv420p' })) {
      spots.push({ opaque: at(frame, AREA.x + 4, AREA.y + 10), half: at(frame, AREA.x + 20, AREA.y + 10), clear: at(frame, AREA.x + 28, AREA.y + 10), outside: at(frame, 4, 4) });
    }
    return { spots, started };
  }

  const check = (spots: Awaited<ReturnType<typeof render>>['spots']) => {
    assert.equal(spots.length, TOTAL, 'one output frame per patch');
    spots.forEach((spot, i) => {
      const [patchY, loopY] = [patchLevel(i), loopLevel(i % LOOP)];
      assert.equal(spot.opaque, patchY, `frame ${i}: patch ${i} where its alpha is 255`);
      assert.equal(spot.clear, loopY, `frame ${i}: loop frame ${i % LOOP} where the alpha is 0`);
      assert.equal(spot.outside, loopY, `frame ${i}: loop frame ${i % LOOP} outside the patch`);
      assert.ok(Math.abs(spot.half - (patchY * 128 + loopY * 127) / 255) <= 1.5, `frame ${i}: a blend where the alpha is 128 (${spot.half})`);
    });
  };

  test('a loop that fits the cache is decoded once and replayed; every patch meets its own frame', async () => {
    const { spots, started } = await render();
    check(spots);
    assert.deepEqual(started, { render: 1, frames: 0 }, 'one ffmpeg, no separate decoder');
  });

  test('a loop over the cache budget is read again on each pass, with the same result', async () => {
    const { spots } = await render(0);
    check(spots);
  });

  test('what decides between the two: the loop\'s decoded size against the budget (64 MB)', () => {
    const at720 = { width: 1280, height: 720, fps: 25, total: 15_000, area: AREA, audio: 'a.wav', output: '/tmp/out.mp4' };
    // A still: one frame, held once and replayed; the video is opened once.
    const still = renderCommand({ ...at720, loopVideo: 'still.mp4', loopFrames: 1 });
    assert.equal(still.loopList, undefined);
    assert.match(still.args.join(' '), /^-i still\.mp4 .*\[0:v\]loop=loop=-1:size=1:start=0,/);
    // 46 frames of 720p yuv420p (1.38 MB each) fit in 64 MB; 47 do not, and are listed once per pass.
    assert.equal(renderCommand({ ...at720, loopVideo: 'short.mp4', loopFrames: 46 }).loopList, undefined);
    const long = renderCommand({ ...at720, loopVideo: '/avatars/it\'s/frames.mp4', loopFrames: 98 });
    assert.doesNotMatch(long.args.join(' '), /loop=loop/);
    assert.deepEqual(long.args.slice(0, 5), ['-f', 'concat', '-safe', '0', '-i']);
    const entries = long.loopList!.text.split('\n').filter((line) => line.startsWith('file '));
    assert.equal(entries.length, Math.ceil(15_000 / 98));
    assert.equal(entries[0], "file '/avatars/it'\\''s/frames.mp4'", 'a quote in the path is escaped as the concat demuxer reads it');
  });
});
