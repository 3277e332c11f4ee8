import { execFile } from 'node:child_process';
import { PassThrough, type Readable, type Writable } from 'node:stream';
import ffmpeg from 'fluent-ffmpeg';
import { PipelineError } from '../pipelines/pipeline';

/**
 * The one place the worker talks to ffmpeg (through fluent-ffmpeg, unmaintained upstream since
 * 2025: keep it behind this module). Frames move raw through pipes, never as files, and every
 * command dies with the job's abort signal.
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

/** A media problem a job reports as its failure. `retryable` only when another attempt may succeed. */
export class MediaError extends PipelineError {
  declare readonly code: 'media_unreadable' | 'no_audio' | 'no_video' | 'media_too_long' | 'ffmpeg_failed';

  constructor(code: MediaError['code'], message: string, retryable = false) {
    super(code, message, retryable);
    this.name = 'MediaError';
  }
}

/** ffmpeg and ffprobe: FFMPEG_PATH / FFPROBE_PATH (the image's distro ffmpeg has NVENC), else the npm static builds. */
export function binaries(): { ffmpeg: string; ffprobe: string } {
  return {
    ffmpeg: process.env.FFMPEG_PATH ?? (require('@ffmpeg-installer/ffmpeg') as { path: string }).path,
    ffprobe: process.env.FFPROBE_PATH ?? (require('@ffprobe-installer/ffprobe') as { path: string }).path,
  };
}

function command(input?: string | Readable): ffmpeg.FfmpegCommand {
  const { ffmpeg: ffmpegPath, ffprobe } = binaries();
  return ffmpeg(input as string).setFfmpegPath(ffmpegPath).setFfprobePath(ffprobe);
}

/** Kills `cmd` when `signal` aborts; returns the un-hook. */
function killOnAbort(cmd: ffmpeg.FfmpegCommand, signal?: AbortSignal): () => void {
  if (!signal) return () => undefined;
  const kill = () => cmd.kill('SIGKILL');
  // fluent-ffmpeg spawns asynchronously and kill() before the spawn is a no-op: kill on start too.
  cmd.on('start', () => {
    if (signal.aborted) kill();
  });
  if (signal.aborted) kill();
  signal.addEventListener('abort', kill, { once: true });
  return () => signal.removeEventListener('abort', kill);
}

/** ffmpeg's own last error line, without the banner. */
function ffmpegReason(error: unknown, stderr?: string): string {
  const lines = (stderr ?? '').split('\n').map((l) => l.trim()).filter(Boolean);
  const last = lines.filter((l) => /error|invalid|no such|not found|could not|failed/i.test(l)).at(-1) ?? lines.at(-1);
  return (last ?? (error instanceof Error ? error.message : String(error))).slice(0, 300);
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
    command(file).ffprobe((error: unknown, data: ffmpeg.FfprobeData) => {
      if (error) return reject(new MediaError('media_unreadable', `not a readable media file: ${ffmpegReason(error)}`));
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

/** Decodes the first audio stream to mono float32 at `sampleRate` (16 kHz: Whisper's rate). */
export async function decodeAudio(file: string, options: { sampleRate?: number; maxSeconds?: number; signal?: AbortSignal } = {}): Promise<Float32Array> {
  const rate = options.sampleRate ?? 16_000;
  const chunks: Buffer[] = [];
  let bytes = 0;
  const limit = options.maxSeconds !== undefined ? Math.ceil(options.maxSeconds * rate) * 4 : Infinity;
  const cmd = command(file).noVideo().audioChannels(1).audioFrequency(rate).format('f32le');
  await run(cmd, options.signal, UNREADABLE, (out) => {
    out.on('data', (chunk: Buffer) => {
      bytes += chunk.length;
      if (bytes > limit) cmd.kill('SIGKILL');
      else chunks.push(chunk);
    });
  }).catch((error: unknown) => {
    if (bytes > limit) throw new MediaError('media_too_long', `audio is longer than ${options.maxSeconds} s`);
    throw error;
  });
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
  const filters = [...(options.fps ? [`fps=${options.fps}`] : []), `scale=${options.width}:${options.height}:flags=bicubic`];
  const cmd = command(file).noAudio().videoFilters(filters).outputOptions(['-pix_fmt', pixelFormat]).format('rawvideo');
  if (options.maxFrames) cmd.frames(options.maxFrames);
  // Input seeking: ffmpeg decodes from the keyframe before and drops frames up to the time, so it is exact.
  if (options.startSec) cmd.inputOptions(['-ss', options.startSec.toFixed(6)]);
  let stderr = '';
  let failure: Error | undefined;
  cmd.on('stderr', (line: string) => (stderr = `${stderr}\n${line}`.slice(-4000)));
  const finished = new Promise<void>((resolve) => {
    cmd.on('end', () => {
      if (options.signal?.aborted) failure = options.signal.reason as Error;
      resolve();
    });
    cmd.on('error', (error: unknown) => {
      failure = options.signal?.aborted ? (options.signal.reason as Error) : new MediaError('media_unreadable', `decoding failed: ${ffmpegReason(error, stderr)}`);
      resolve();
    });
  });
  const unhook = killOnAbort(cmd, options.signal);
  const out = cmd.pipe() as Readable;
  // Chunks (64 KB pipe reads) are copied once into the frame being filled; a frame is yielded
  // whole and its buffer not reused, since the consumer may keep it.
  let frame = Buffer.allocUnsafe(size);
  let filled = 0;
  try {
    for await (const chunk of out as AsyncIterable<Buffer>) {
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
    await finished; // the output ended: wait for ffmpeg's verdict (a kill or a decode error)
    if (failure) throw failure;
  } finally {
    unhook();
    if (!out.destroyed) cmd.kill('SIGKILL');
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
  /** Resolves when ffmpeg has taken the frame (backpressure). */
  write(frame: Buffer): Promise<void>;
  /** Closes the input and waits for the file to be complete. */
  finish(): Promise<void>;
}

/**
 * H.264 (yuv420p) from raw frames (rgb24 unless told) written to ffmpeg's stdin, muxed with `audio` (AAC). The
 * caller writes as many frames as the audio needs, so the streams end within one frame of each other.
 */
export function startEncoder(options: {
  output: string;
  width: number;
  height: number;
  fps: number;
  audio?: string;
  crf?: number;
  codec?: VideoCodec;
  /** Scales the output to this height (width follows, kept even). */
  outputHeight?: number;
  /** libx264 tuning; `fastdecode` for a video that is decoded again and again (the avatar loop). */
  tune?: 'fastdecode';
  pixelFormat?: PixelFormat;
  signal?: AbortSignal;
}): VideoEncoder {
  const pixelFormat = options.pixelFormat ?? 'rgb24';
  const input = new PassThrough({ highWaterMark: frameBytes(options.width, options.height, pixelFormat) * 2 });
  const cmd = command(input)
    .inputFormat('rawvideo')
    .inputOptions(['-pix_fmt', pixelFormat, '-s', `${options.width}x${options.height}`, '-r', String(options.fps)]);
  if (options.audio) cmd.input(options.audio);
  const codec = options.codec ?? 'libx264';
  cmd.outputOptions([
    '-map', '0:v:0', ...(options.audio ? ['-map', '1:a:0', '-c:a', 'aac', '-b:a', '128k'] : []),
    '-c:v', codec, ...(codec === 'libx264' ? ['-preset', 'veryfast', '-crf', String(options.crf ?? 20), ...(options.tune ? ['-tune', options.tune] : [])] : ['-cq', String(options.crf ?? 23)]),
    '-pix_fmt', 'yuv420p', '-movflags', '+faststart',
  ]);
  if (options.outputHeight) cmd.videoFilters(`scale=-2:${options.outputHeight}`);
  const done = run(cmd.output(options.output), options.signal, ENCODER_FAILED);
  done.catch(() => input.destroy());
  return {
    write(frame) {
      if (input.write(frame)) return Promise.resolve();
      return new Promise((resolve, reject) => {
        const onDrain = () => { input.off('close', onClose); resolve(); };
        const onClose = () => {
          input.off('drain', onDrain);
          reject(options.signal?.aborted ? options.signal.reason : new MediaError('ffmpeg_failed', 'the encoder stopped taking frames', true));
        };
        input.once('drain', onDrain);
        input.once('close', onClose);
      });
    },
    async finish() {
      input.end();
      await done;
    },
  };
}

const UNREADABLE = { code: 'media_unreadable', retryable: false } as const;
const ENCODER_FAILED = { code: 'ffmpeg_failed', retryable: true } as const;

/** Runs a command to its end; rejects with ffmpeg's reason (or the abort's). `onOutput` gets the piped output stream. */
function run(
  cmd: ffmpeg.FfmpegCommand,
  signal: AbortSignal | undefined,
  failure: { code: MediaError['code']; retryable: boolean },
  onOutput?: (out: Readable | Writable) => void,
): Promise<void> {
  return new Promise((resolve, reject) => {
    let stderr = '';
    const unhook = killOnAbort(cmd, signal);
    cmd.on('stderr', (line: string) => (stderr = `${stderr}\n${line}`.slice(-4000)));
    cmd.on('end', () => {
      unhook();
      // Finished before the kill landed: the abort still wins, the output is not wanted.
      if (signal?.aborted) reject(signal.reason);
      else resolve();
    });
    cmd.on('error', (error: unknown) => {
      unhook();
      if (signal?.aborted) reject(signal.reason);
      else reject(new MediaError(failure.code, `ffmpeg failed: ${ffmpegReason(error, stderr)}`, failure.retryable));
    });
    if (onOutput) onOutput(cmd.pipe());
    else cmd.run();
  });
}
