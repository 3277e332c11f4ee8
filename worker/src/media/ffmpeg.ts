import { execFile } from 'node:child_process';
import ffmpeg from 'fluent-ffmpeg';
import { binaries, MediaError, runFfmpeg, type FfmpegProcess } from './ffmpeg-process';

export { binaries, ffmpegStarts, MediaError } from './ffmpeg-process';

/**
 * The one place the worker talks to ffmpeg. Frames move raw through pipes, never as files, and
 * every command dies with the job's abort signal. The raw pipes run ffmpeg directly
 * (ffmpeg-process.ts); probing goes through fluent-ffmpeg, which parses ffprobe's output well
 * (unmaintained upstream since 2025: keep it behind this module).
 */

/**
 * Raw frame layouts: rgb24 for pixel work on whole frames (face detection, crops); yuv420p (I420)
 * where frames only pass through with a face pasted in, since it is what H.264 holds: no colour
 * conversion on either side, half the bytes.
 */
export type PixelFormat = 'rgb24' | 'yuv420p';

export function frameBytes(width: number, height: number, format: PixelFormat = 'rgb24'): number {
  return format === 'rgb24' ? width * height * 3 : width * height + 2 * (width >> 1) * (height >> 1);
}

export interface MediaInfo {
  durationSec: number;
  video?: { width: number; height: number; fps: number; codec: string };
  audio?: { sampleRate: number; channels: number; codec: string };
}

function parseRate(rate: string | undefined): number {
  if (!rate) return 0;
  const [n, d] = rate.split('/').map(Number);
  return d ? n! / d : n ?? 0;
}

export function probe(file: string): Promise<MediaInfo> {
  return new Promise((resolve, reject) => {
    const { ffprobe } = binaries();
    ffmpeg(file).setFfprobePath(ffprobe).ffprobe(['-hide_banner', '-loglevel', 'error'], (error: unknown, data: ffmpeg.FfprobeData) => {
      if (error) return reject(new MediaError('media_unreadable', `not a readable media file: ${probeReason(error)}`));
      const video = data.streams.find((s) => s.codec_type === 'video');
      const audio = data.streams.find((s) => s.codec_type === 'audio');
      resolve({
        durationSec: Number(data.format.duration) || 0,
        video: video && { width: video.width ?? 0, height: video.height ?? 0, fps: parseRate(video.avg_frame_rate) || parseRate(video.r_frame_rate), codec: video.codec_name ?? '' },
        audio: audio && { sampleRate: Number(audio.sample_rate) || 0, channels: audio.channels ?? 0, codec: audio.codec_name ?? '' },
      });
    });
  });
}

/** fluent-ffmpeg's ffprobe error is `ffprobe exited with code N` then stderr: ffprobe's own line first. */
function probeReason(error: unknown): string {
  const [status = '', ...said] = (error instanceof Error ? error.message : String(error)).split('\n').map((l) => l.trim()).filter(Boolean);
  return (said.length ? `${said.at(-1)} (${status.replace(/^ffprobe /, '')})` : status).slice(0, 300);
}

/**
 * Decodes the first audio stream to mono float32 at `sampleRate` (16 kHz: Whisper's rate). Stereo
 * becomes the mean of its two channels, as librosa (MuseTalk's loader) makes it: ffmpeg's own
 * downmix weights each by 1/sqrt(2), 3 dB louder, unless its matrix is normalised to 1
 * (`-rematrix_maxval 1`). Sources of more than two channels get ffmpeg's normalised downmix.
 */
export async function decodeAudio(file: string, options: { sampleRate?: number; maxSeconds?: number; signal?: AbortSignal } = {}): Promise<Float32Array> {
  const rate = options.sampleRate ?? 16_000;
  const limit = options.maxSeconds !== undefined ? Math.ceil(options.maxSeconds * rate) * 4 : Infinity;
  const ffmpegRun = runFfmpeg(['-i', file, '-vn', '-ac', '1', '-rematrix_maxval', '1', '-ar', String(rate), '-f', 'f32le', 'pipe:1'], {
    purpose: 'audio', failure: UNREADABLE, stdout: true, signal: options.signal,
  });
  const chunks: Buffer[] = [];
  let bytes = 0;
  try {
    for await (const chunk of ffmpegRun.stdout as AsyncIterable<Buffer>) {
      bytes += chunk.length;
      if (bytes > limit) break;
      chunks.push(chunk);
    }
  } finally {
    if (bytes > limit) ffmpegRun.kill();
  }
  if (bytes > limit) {
    options.signal?.throwIfAborted();
    throw new MediaError('media_too_long', `audio is longer than ${options.maxSeconds} s`);
  }
  await ffmpegRun.done;
  if (bytes === 0) throw new MediaError('no_audio', 'the audio has no samples');
  const all = Buffer.concat(chunks);
  // A fresh, aligned copy: Float32Array needs a 4-byte aligned offset.
  const samples = new Float32Array(all.length >> 2);
  Buffer.from(samples.buffer).set(all.subarray(0, samples.length * 4));
  return samples;
}

export interface FrameSource {
  width: number;
  height: number;
  frames: AsyncIterable<Buffer>;
}

/**
 * Streams the video's frames as buffers of exactly frameBytes(width, height, pixelFormat), resampled
 * to `fps` and scaled to `width`x`height` (rgb24 unless asked). Backpressure reaches ffmpeg: it
 * decodes only as fast as frames are taken.
 */
export async function* decodeFrames(
  file: string,
  options: { width: number; height: number; fps?: number; maxFrames?: number; startSec?: number; pixelFormat?: PixelFormat; signal?: AbortSignal },
): AsyncGenerator<Buffer> {
  const pixelFormat = options.pixelFormat ?? 'rgb24';
  const size = frameBytes(options.width, options.height, pixelFormat);
  const filters = [...(options.fps ? [`fps=${options.fps}`] : []), `scale=${options.width}:${options.height}:flags=bicubic`].join(',');
  const ffmpegRun = runFfmpeg([
    // Input seeking: ffmpeg decodes from the keyframe before and drops frames up to the time, so it is exact.
    ...(options.startSec ? ['-ss', options.startSec.toFixed(6)] : []),
    '-i', file, '-an', '-vf', filters, ...(options.maxFrames ? ['-frames:v', String(options.maxFrames)] : []),
    '-pix_fmt', pixelFormat, '-f', 'rawvideo', 'pipe:1',
  ], { purpose: 'frames', failure: UNREADABLE, stdout: true, signal: options.signal });
  // Chunks (64 KB pipe reads) are copied once into the frame being filled; a frame is yielded
  // whole and its buffer not reused, since the consumer may keep it.
  let frame = Buffer.allocUnsafe(size);
  let filled = 0;
  try {
    for await (const chunk of ffmpegRun.stdout as AsyncIterable<Buffer>) {
      let offset = 0;
      while (offset < chunk.length) {
        const n = Math.min(size - filled, chunk.length - offset);
        chunk.copy(frame, filled, offset, offset + n);
        filled += n;
        offset += n;
        if (filled === size) {
          yield frame;
          frame = Buffer.allocUnsafe(size);
          filled = 0;
        }
      }
    }
    await ffmpegRun.done; // the output ended: ffmpeg's exit status decides (a kill or a decode error fails)
  } finally {
    // The consumer left early (or a failure): ffmpeg is not needed any more.
    ffmpegRun.kill();
  }
}

/** Decodes a still image (or a video's first frame) to rgb24 at its own size. */
export async function decodeImage(file: string, signal?: AbortSignal): Promise<{ rgb: Buffer; width: number; height: number }> {
  const info = await probe(file);
  if (!info.video) throw new MediaError('no_video', 'the source has no image or video stream');
  const { width, height } = info.video;
  for await (const frame of decodeFrames(file, { width, height, maxFrames: 1, signal })) return { rgb: frame, width, height };
  throw new MediaError('no_video', 'the source has no decodable frame');
}

export type VideoCodec = 'libx264' | 'h264_nvenc';

/**
 * Whether this ffmpeg can encode with `codec` here and now: a fraction of a second of a test
 * pattern to nowhere. For NVENC that needs an ffmpeg built with it, an NVIDIA GPU and the driver's
 * video capability, which only a real encode proves.
 */
export function canEncode(codec: VideoCodec): Promise<boolean> {
  return new Promise((resolve) => {
    execFile(binaries().ffmpeg, ['-hide_banner', '-loglevel', 'error', '-f', 'lavfi', '-i', 'testsrc2=size=256x256:rate=25:duration=0.2', '-c:v', codec, '-f', 'null', '-'],
      { timeout: 15_000 }, (error) => resolve(!error));
  });
}

export interface VideoEncoder {
  /**
   * Resolves when ffmpeg can take the next frame (backpressure). `flushed` is called once `frame`
   * has gone into the pipe and may be reused (up to two frames wait in memory before that).
   */
  write(frame: Buffer, flushed?: () => void): Promise<void>;
  /** Closes the input and waits for the file to be complete. */
  finish(): Promise<void>;
}

/** How a video is encoded: the codec and its quality, shared by every H.264 output. */
export interface EncodeSettings {
  crf?: number;
  codec?: VideoCodec;
  /** Scales the output to this height (width follows, kept even). */
  outputHeight?: number;
  /** libx264 tuning; `fastdecode` for a video that is decoded again and again (the avatar loop). */
  tune?: 'fastdecode';
}

/** ffmpeg output options for H.264 yuv420p (with AAC when there is audio) into an mp4 at `output`. */
export function h264Output(settings: EncodeSettings, output: string, audio: boolean): string[] {
  const codec = settings.codec ?? 'libx264';
  return [
    ...(audio ? ['-c:a', 'aac', '-b:a', '128k'] : []),
    '-c:v', codec, ...(codec === 'libx264' ? ['-preset', 'veryfast', '-crf', String(settings.crf ?? 20), ...(settings.tune ? ['-tune', settings.tune] : [])] : ['-cq', String(settings.crf ?? 23)]),
    '-pix_fmt', 'yuv420p', '-movflags', '+faststart', '-y', output,
  ];
}

/**
 * H.264 (yuv420p) from raw frames (rgb24 unless told) written to ffmpeg's stdin, muxed with `audio` (AAC). The
 * caller writes as many frames as the audio needs, so the streams end within one frame of each other.
 */
export function startEncoder(options: EncodeSettings & {
  output: string;
  width: number;
  height: number;
  fps: number;
  audio?: string;
  pixelFormat?: PixelFormat;
  signal?: AbortSignal;
}): VideoEncoder {
  const pixelFormat = options.pixelFormat ?? 'rgb24';
  const ffmpegRun = runFfmpeg([
    '-f', 'rawvideo', '-pix_fmt', pixelFormat, '-s', `${options.width}x${options.height}`, '-r', String(options.fps), '-i', 'pipe:0',
    ...(options.audio ? ['-i', options.audio] : []),
    '-map', '0:v:0', ...(options.audio ? ['-map', '1:a:0'] : []),
    ...(options.outputHeight ? ['-vf', `scale=-2:${options.outputHeight}`] : []),
    ...h264Output(options, options.output, Boolean(options.audio)),
  ], { purpose: 'encode', failure: ENCODER_FAILED, stdin: true, signal: options.signal });
  return frameSink(ffmpegRun, frameBytes(options.width, options.height, pixelFormat));
}

/** Raw frames of `frameBytes` each into a running ffmpeg's stdin, with backpressure; see VideoEncoder. */
export function frameSink(ffmpegRun: FfmpegProcess, frameBytes: number): VideoEncoder {
  const input = ffmpegRun.stdin;
  // Up to two frames wait in the pipe, so ffmpeg never waits for the next write.
  const ahead = 2 * frameBytes;
  // Why no frame can be written any more, once ffmpeg has ended; a write waiting for room is woken with it.
  let stopped: unknown;
  let wake: ((reason: unknown) => void) | undefined;
  void ffmpegRun.done
    .then(() => new MediaError('ffmpeg_failed', 'the encoder exited before taking every frame', true), (error: unknown) => error)
    .then((reason) => {
      stopped = reason;
      wake?.(reason);
    });
  return {
    write(frame, flushed) {
      if (stopped) return Promise.reject(stopped);
      // 'drain' comes only after a write was refused, and then once the pipe's buffer is empty.
      if (input.write(frame, flushed && (() => flushed())) || input.writableLength < ahead) return Promise.resolve();
      return new Promise((resolve, reject) => {
        const onDrain = () => {
          wake = undefined;
          resolve();
        };
        input.once('drain', onDrain);
        wake = (reason) => {
          input.off('drain', onDrain);
          reject(reason);
        };
      });
    },
    async finish() {
      input.end();
      await ffmpegRun.done;
    },
  };
}

export const UNREADABLE = { code: 'media_unreadable', retryable: false } as const;
export const ENCODER_FAILED = { code: 'ffmpeg_failed', retryable: true } as const;
