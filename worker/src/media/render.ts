import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { ENCODER_FAILED, frameBytes, frameSink, h264Output, type EncodeSettings, type VideoEncoder } from './ffmpeg';
import { runFfmpeg } from './ffmpeg-process';

/** Loop frames kept in memory at most (inside ffmpeg): a still, or a second or so of 720p. */
export const LOOP_CACHE_BYTES = 64 * 1024 * 1024;

/** Where the patches go in every frame: a fixed rectangle (even position and size, for yuv420p's chroma). */
export interface PatchArea {
  x: number;
  y: number;
  width: number;
  height: number;
}

/**
 * Lipsync's output in one ffmpeg: the avatar's looping video decoded, each frame's patch (yuva420p,
 * `area`'s size, alpha = how much of the patch shows) laid over it at `area`, and the result encoded
 * with the audio. Node sends only the patches: the frames themselves never leave ffmpeg, so nothing
 * 720p crosses a pipe and Node copies no frame (piping whole frames out and back in cost more CPU
 * than decoding and encoding them). A loop that fits `cacheBytes` is decoded once and replayed from
 * memory (a still-image avatar decodes one frame); a longer one is read again on each pass.
 * Write exactly `total` patches, in frame order, then finish().
 */
export function startRender(options: RenderOptions): VideoEncoder {
  const command = renderCommand(options);
  if (command.loopList) writeFileSync(command.loopList.file, command.loopList.text);
  const ffmpegRun = runFfmpeg(command.args, { purpose: 'render', failure: ENCODER_FAILED, stdin: true, signal: options.signal });
  return frameSink(ffmpegRun, patchBytes(options.area));
}

export interface RenderOptions extends EncodeSettings {
  loopVideo: string;
  /** Frames in the looping video, and their size. */
  loopFrames: number;
  width: number;
  height: number;
  fps: number;
  total: number;
  area: PatchArea;
  audio: string;
  output: string;
  cacheBytes?: number;
  signal?: AbortSignal;
}

/** The render's ffmpeg arguments, and the concat list a loop read more than once needs. */
export function renderCommand(options: RenderOptions): { args: string[]; loopList?: { file: string; text: string } } {
  const { area, fps } = options;
  const cached = options.loopFrames * frameBytes(options.width, options.height, 'yuv420p') <= (options.cacheBytes ?? LOOP_CACHE_BYTES);
  // Both streams are numbered by frame (pts = N): patch n meets frame n whatever timestamps the
  // file or the pipe carried. `copy` gives overlay a frame of its own to draw on; without it, overlay
  // copies each decoder-held frame into freshly allocated memory, which cost more than the overlay.
  const graph = [
    `[0:v]${cached ? `loop=loop=-1:size=${options.loopFrames}:start=0,` : ''}setpts=N/(${fps}*TB),copy[bg]`,
    `[1:v]setpts=N/(${fps}*TB)[fg]`,
    `[bg][fg]overlay=x=${area.x}:y=${area.y}:eof_action=endall:shortest=1,format=yuv420p${options.outputHeight ? `,scale=-2:${options.outputHeight}` : ''}[out]`,
  ].join(';');
  // A longer loop is read again on each pass: the concat demuxer, given the video as many times as
  // needed. (`-stream_loop` does the same; runs of it beside the piped patches now and then took
  // half as much CPU again, though this machine's own speed was later seen to vary as much.)
  const loopList = cached ? undefined : {
    file: `${options.output}.loop.txt`,
    text: `ffconcat version 1.0\n${`file '${path.resolve(options.loopVideo).replace(/'/g, "'\\''")}'\n`.repeat(Math.ceil(options.total / options.loopFrames))}`,
  };
  const args = [
    ...(loopList ? ['-f', 'concat', '-safe', '0', '-i', loopList.file] : ['-i', options.loopVideo]),
    '-f', 'rawvideo', '-pix_fmt', 'yuva420p', '-s', `${area.width}x${area.height}`, '-r', String(fps), '-i', 'pipe:0',
    '-i', options.audio,
    '-filter_complex', graph, '-map', '[out]', '-map', '2:a:0', '-frames:v', String(options.total),
    ...h264Output(options, options.output, true),
  ];
  return { args, loopList };
}

/** Bytes of one yuva420p patch: luma and alpha at full resolution, chroma at half. */
export function patchBytes(area: Pick<PatchArea, 'width' | 'height'>): number {
  return frameBytes(area.width, area.height, 'yuv420p') + area.width * area.height;
}
