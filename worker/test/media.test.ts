import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { before, describe, test } from 'node:test';
import { binaries, canEncode, decodeAudio, decodeFrames, decodeImage, MediaError, probe, startEncoder } from '../src/media/ffmpeg';
import { reversedFrames } from '../src/media/ping-pong';
import { makeClip } from './helpers/media-fixtures';

const dir = mkdtempSync(path.join(os.tmpdir(), 'media-'));

describe('ffmpeg media module (real ffmpeg from npm)', () => {
  test('probe, decoded frames and 16 kHz audio match the clip', async () => {
    const clip = makeClip(dir, { seconds: 2 });
    const info = await probe(clip);
    assert.deepEqual(info.video && { w: info.video.width, h: info.video.height, fps: info.video.fps }, { w: 320, h: 240, fps: 25 });
    assert.ok(Math.abs(info.durationSec - 2) < 0.1, `duration ${info.durationSec}`);
    let frames = 0;
    for await (const frame of decodeFrames(clip, { width: 160, height: 120, fps: 25 })) {
      assert.equal(frame.length, 160 * 120 * 3);
      frames++;
    }
    assert.equal(frames, 50);
    const audio = await decodeAudio(clip);
    assert.ok(Math.abs(audio.length - 32_000) < 1_100, `${audio.length} samples`);
    const peak = audio.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
    assert.ok(peak > 0.05 && peak <= 1, `a real tone, peak ${peak}`);
  });

  test('stereo becomes mono as the mean of the two channels (librosa\'s to_mono, which MuseTalk\'s features come from), mono stays as it is', async () => {
    const ff = (...args: string[]) => execFileSync(binaries().ffmpeg, ['-y', '-loglevel', 'error', ...args]);
    const stereo = path.join(dir, 'stereo.wav');
    const mono = path.join(dir, 'mono.wav');
    ff('-f', 'lavfi', '-i', 'aevalsrc=0.5*sin(2*PI*440*t)|0.25*sin(2*PI*440*t):s=16000:d=0.5', '-c:a', 'pcm_f32le', stereo);
    ff('-f', 'lavfi', '-i', 'aevalsrc=0.5*sin(2*PI*440*t):s=16000:d=0.5', '-c:a', 'pcm_f32le', mono);
    const peak = (samples: Float32Array) => samples.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
    // ffmpeg's plain downmix would give 0.75 / sqrt(2) = 0.530 here.
    assert.ok(Math.abs(peak(await decodeAudio(stereo)) - 0.375) < 1e-4, 'the mean of 0.5 and 0.25');
    assert.ok(Math.abs(peak(await decodeAudio(mono)) - 0.5) < 1e-4);
  });

  test('frames written to the encoder with the audio make an mp4 whose streams last as long as the audio', async () => {
    const audio = makeClip(dir, { seconds: 1.2, video: false });
    const output = path.join(dir, 'out.mp4');
    const encoder = startEncoder({ output, width: 128, height: 96, fps: 25, audio });
    const frame = Buffer.alloc(128 * 96 * 3);
    for (let i = 0; i < 30; i++) {
      frame.fill(i * 8);
      await encoder.write(frame);
    }
    await encoder.finish();
    const info = await probe(output);
    assert.equal(info.video?.codec, 'h264');
    assert.equal(info.audio?.codec, 'aac');
    assert.ok(Math.abs(info.durationSec - 1.2) <= 0.08, `mp4 lasts ${info.durationSec} s for 1.2 s of audio`);
  });

  test('frames come back in reverse order, segment by segment, exactly', async () => {
    const output = path.join(dir, 'numbered.mp4');
    const encoder = startEncoder({ output, width: 64, height: 64, fps: 25, crf: 0 });
    for (let i = 0; i < 60; i++) await encoder.write(Buffer.alloc(64 * 64 * 3, i * 4));
    await encoder.finish();
    const seen: number[] = [];
    for await (const frame of reversedFrames(output, { width: 64, height: 64, fps: 25, frameCount: 60, segment: 25 })) seen.push(Math.round(frame[64 * 32 * 3 + 96]! / 4));
    assert.deepEqual(seen, Array.from({ length: 60 }, (_, i) => 59 - i));
  });

  test('an encoder is usable only when a test encode with it works: libx264 here, NVENC not without a GPU', async () => {
    assert.equal(await canEncode('libx264'), true);
    assert.equal(await canEncode('h264_nvenc'), false);
  });

  test('a still image decodes to one frame at its own size', async () => {
    const still = path.join(dir, 'still.png');
    execFileSync(binaries().ffmpeg, ['-y', '-loglevel', 'error', '-f', 'lavfi', '-i', 'testsrc2=size=200x150:duration=0.04', '-frames:v', '1', still]);
    const image = await decodeImage(still);
    assert.deepEqual([image.width, image.height, image.rgb.length], [200, 150, 200 * 150 * 3]);
  });

  test('bad media: not media, no audio, too long', async () => {
    const junk = path.join(dir, 'junk.mp4');
    writeFileSync(junk, 'this is not a video');
    await assert.rejects(probe(junk), (e: unknown) => e instanceof MediaError && e.code === 'media_unreadable' && !e.retryable);
    await assert.rejects(decodeAudio(junk), (e: unknown) => e instanceof MediaError && e.code === 'media_unreadable');
    const silent = makeClip(dir, { seconds: 1, audio: false, name: 'silent.mp4' });
    await assert.rejects(decodeAudio(silent), (e: unknown) => e instanceof MediaError && (e.code === 'no_audio' || e.code === 'media_unreadable'));
    const long = makeClip(dir, { seconds: 3, video: false, name: 'long.wav' });
    await assert.rejects(decodeAudio(long, { maxSeconds: 1 }), (e: unknown) => e instanceof MediaError && e.code === 'media_too_long');
  });

  test('an abort stops ffmpeg mid-decode and mid-encode, and the abort is the reason given', async () => {
    const clip = makeClip(dir, { seconds: 20, width: 640, height: 360, name: 'long.mp4' });
    const stop = new AbortController();
    let frames = 0;
    // Each rejection comes only once ffmpeg's process has exited (media/ffmpeg-process.ts waits for its close).
    await assert.rejects((async () => {
      for await (const _frame of decodeFrames(clip, { width: 640, height: 360, signal: stop.signal })) {
        if (++frames === 5) stop.abort(new Error('job cancelled'));
      }
    })(), /job cancelled/);
    assert.ok(frames < 500, `stopped after ${frames} of 500 frames`);

    const encodeStop = new AbortController();
    const encoder = startEncoder({ output: path.join(dir, 'aborted.mp4'), width: 640, height: 360, fps: 25, signal: encodeStop.signal });
    await encoder.write(Buffer.alloc(640 * 360 * 3));
    encodeStop.abort(new Error('lease lost'));
    await assert.rejects(encoder.finish(), /lease lost/);
    await assert.rejects(encoder.write(Buffer.alloc(640 * 360 * 3)), /lease lost/, 'no frame is taken after the abort');
  });

  test('a failure gives ffmpeg\'s own error line and its exit status, not its statistics', async () => {
    const junk = path.join(dir, 'junk-frames.mp4');
    writeFileSync(junk, 'this is not a video either');
    await assert.rejects(
      (async () => {
        for await (const _frame of decodeFrames(junk, { width: 64, height: 64 })) assert.fail('no frame from junk');
      })(),
      (e: unknown) => e instanceof MediaError && e.code === 'media_unreadable' && /Invalid data found when processing input/.test(e.message) && /\(exit code 1\)$/.test(e.message) && !/muxing overhead|Lavc/.test(e.message),
    );
  });
});

/**
 * ffmpeg stand-ins that end in the orders a loaded machine produces: the real ffmpeg does the work,
 * then a shell decides when its pipe closes and how it exits. Nothing here depends on a scheduler.
 */
describe('ffmpeg\'s exit and its pipes, in either order', () => {
  const real = binaries().ffmpeg;
  const wrapper = (name: string, script: string) => {
    const file = path.join(dir, name);
    writeFileSync(file, `#!/bin/sh\n${script}\n`, { mode: 0o755 });
    return file;
  };
  const withFfmpeg = async (file: string, body: () => Promise<void>) => {
    const saved = process.env.FFMPEG_PATH;
    process.env.FFMPEG_PATH = file;
    try {
      await body();
    } finally {
      if (saved === undefined) delete process.env.FFMPEG_PATH;
      else process.env.FFMPEG_PATH = saved;
    }
  };
  const countFrames = async (file: string) => {
    let n = 0;
    for await (const _frame of decodeFrames(file, { width: 64, height: 48 })) n++;
    return n;
  };
  let clip: string;
  before(() => {
    clip = makeClip(dir, { seconds: 0.4, width: 64, height: 48, audio: false, name: 'ten-frames.mp4' });
  });

  test('the pipe closes, and the process exits 0 well after: a success', async () => {
    // fluent-ffmpeg failed this case ("Output stream closed") whenever the gap passed 20 ms.
    const slowExit = wrapper('slow-exit.sh', `"${real}" "$@"; code=$?; exec 1>&-; sleep 0.3; exit $code`);
    await withFfmpeg(slowExit, async () => {
      assert.equal(await countFrames(clip), 10);
      const encoder = startEncoder({ output: path.join(dir, 'slow-exit.mp4'), width: 64, height: 48, fps: 25 });
      await encoder.write(Buffer.alloc(64 * 48 * 3));
      await encoder.finish();
    });
    assert.equal((await probe(path.join(dir, 'slow-exit.mp4'))).video?.codec, 'h264');
  });

  test('the process exits 0 before its output has been read: a success with every frame', async () => {
    // The shell exits at once; ffmpeg, still writing, holds the pipe until it is done.
    const earlyExit = wrapper('early-exit.sh', `"${real}" "$@" & exit 0`);
    await withFfmpeg(earlyExit, async () => assert.equal(await countFrames(clip), 10));
  });

  test('every frame delivered but a failing exit status, or a signal: a failure saying which', async () => {
    const exitsTwo = wrapper('exit-two.sh', `"${real}" "$@"; echo 'stand-in: failed after the frames' >&2; exit 2`);
    await withFfmpeg(exitsTwo, () => assert.rejects(countFrames(clip), (e: unknown) => e instanceof MediaError && /stand-in: failed after the frames \(exit code 2\)/.test(e.message)));
    const crashes = wrapper('crash.sh', `"${real}" "$@"; kill -SEGV $$`);
    await withFfmpeg(crashes, () => assert.rejects(countFrames(clip), (e: unknown) => e instanceof MediaError && /killed by SIGSEGV/.test(e.message)));
  });

  test('an ffmpeg that cannot be started is a clear failure, not a crash', async () => {
    await withFfmpeg(path.join(dir, 'no-such-ffmpeg'), () => assert.rejects(countFrames(clip), (e: unknown) => e instanceof MediaError && /could not run ffmpeg: .*ENOENT/.test(e.message)));
  });
});
