import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { decodeFrames, frameBytes, probe, startEncoder } from '../src/media/ffmpeg';
import { patchBytes, startRender } from '../src/media/render';
import { startCpuHogs } from './helpers/cpu-hogs';
import { makeClip } from './helpers/media-fixtures';
import { tempDir } from './helpers/temp-dir';

/**
 * ffmpeg's process lifecycles (frame decoder, renderer, encoder), hundreds of times, while two busy loops hold the cores: on a loaded
 * machine the pipe's close and the process's exit arrive in either order and far apart, and a
 * decoder or encoder that depends on their timing fails here (it once failed one lipsync in two on
 * a fresh 2-core machine). Small frames keep the runs cheap: the race is in the process, not the pixels.
 */
const WIDTH = 320;
const HEIGHT = 240;
const PARALLEL = 4;

/** Runs `task` `times` times, `PARALLEL` at a time; every failure is kept, not just the first. */
async function repeat(times: number, task: (i: number) => Promise<void>): Promise<string[]> {
  const failures: string[] = [];
  let next = 0;
  await Promise.all(Array.from({ length: PARALLEL }, async () => {
    while (next < times) {
      const i = next++;
      await task(i).catch((error: unknown) => failures.push(`run ${i}: ${error instanceof Error ? error.message : String(error)}`));
    }
  }));
  return failures;
}

describe('ffmpeg lifecycle under CPU load (two busy loops)', () => {
  const dir = tempDir('media-stress-');
  let hogs: ReturnType<typeof startCpuHogs>;
  let still: string;
  let clip: string;
  let audio: string;

  before(() => {
    still = makeClip(dir, { seconds: 0.04, width: WIDTH, height: HEIGHT, audio: false, name: 'one-frame.mp4' });
    clip = makeClip(dir, { seconds: 2, width: WIDTH, height: HEIGHT, audio: false, name: 'fifty-frames.mp4' });
    audio = makeClip(dir, { seconds: 0.2, video: false, name: 'speech.wav' });
    hogs = startCpuHogs();
  });
  after(() => hogs.stop());

  const decodeAll = async (file: string, expected: number, pixelFormat: 'rgb24' | 'yuv420p') => {
    let frames = 0;
    for await (const frame of decodeFrames(file, { width: WIDTH, height: HEIGHT, pixelFormat })) {
      assert.equal(frame.length, frameBytes(WIDTH, HEIGHT, pixelFormat));
      frames++;
    }
    assert.equal(frames, expected, `${frames} frames of ${expected}`);
  };

  test('a 1-frame video decodes 200 times without a failure', async () => {
    const failures = await repeat(200, (i) => decodeAll(still, 1, i % 2 ? 'rgb24' : 'yuv420p'));
    assert.deepEqual(failures, []);
  });

  test('a 50-frame video decodes 100 times without a failure, and stopping early is not a failure', async () => {
    const failures = await repeat(100, async (i) => {
      if (i % 4 !== 3) return decodeAll(clip, 50, 'yuv420p');
      // The consumer leaves after a few frames: ffmpeg is stopped and nothing is thrown.
      let taken = 0;
      for await (const _frame of decodeFrames(clip, { width: WIDTH, height: HEIGHT })) if (++taken === 3) break;
      assert.equal(taken, 3);
    });
    assert.deepEqual(failures, []);
  });

  test('the renderer (lipsync\'s one ffmpeg: loop, patches, audio) runs 100 times over a 1-frame and a 50-frame loop without a failure', async () => {
    const area = { x: 16, y: 16, width: 32, height: 32 };
    const patch = Buffer.alloc(patchBytes(area), 200);
    const failures = await repeat(100, async (i) => {
      const [loopVideo, loopFrames] = i % 2 ? [clip, 50] : [still, 1];
      const total = 1 + (i % 5);
      const renderer = startRender({ loopVideo, loopFrames, width: WIDTH, height: HEIGHT, fps: 25, total, area, audio, output: path.join(dir, `render-${i}.mp4`) });
      for (let k = 0; k < total; k++) await renderer.write(patch);
      await renderer.finish();
    });
    assert.deepEqual(failures, []);
  });

  test('the encoder starts, takes 1 or 50 frames and finishes a playable file 150 times without a failure', async () => {
    const frame = Buffer.alloc(frameBytes(WIDTH, HEIGHT, 'yuv420p'), 128);
    const failures = await repeat(150, async (i) => {
      const output = path.join(dir, `out-${i}.mp4`);
      const encoder = startEncoder({ output, width: WIDTH, height: HEIGHT, fps: 25, pixelFormat: 'yuv420p' });
      const count = i % 2 ? 50 : 1;
      for (let k = 0; k < count; k++) await encoder.write(frame);
      await encoder.finish();
      if (i % 15 === 0) assert.equal((await probe(output)).video?.codec, 'h264');
    });
    assert.deepEqual(failures, []);
  });
});
