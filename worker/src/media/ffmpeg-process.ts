import { spawn } from 'node:child_process';
import type { Readable, Writable } from 'node:stream';
import { PipelineError } from '../pipelines/pipeline';

/** A media problem a job reports as its failure. `retryable` only when another attempt may succeed. */
export class MediaError extends PipelineError {
  declare readonly code: 'media_unreadable' | 'media_forbidden' | 'no_audio' | 'no_video' | 'media_too_long' | 'ffmpeg_failed';

  constructor(code: MediaError['code'], message: string, retryable = false) {
    super(code, message, retryable);
    this.name = 'MediaError';
  }
}

/** ffmpeg and ffprobe: FFMPEG_PATH / FFPROBE_PATH (the image's distro ffmpeg has NVENC), else the npm static builds. */
export function binaries(): { ffmpeg: string; ffprobe: string } {
  return {
    ffmpeg: process.env.FFMPEG_PATH || (require('@ffmpeg-installer/ffmpeg') as { path: string }).path,
    ffprobe: process.env.FFPROBE_PATH || (require('@ffprobe-installer/ffprobe') as { path: string }).path,
  };
}

/** What an ffmpeg process is for: names its failures, and counts its starts. */
export type FfmpegPurpose = 'frames' | 'audio' | 'encode' | 'render';

const DESCRIBED: Record<FfmpegPurpose, string> = { frames: 'decoding', audio: 'audio decoding', encode: 'encoding', render: 'rendering' };
const starts: Record<FfmpegPurpose, number> = { frames: 0, audio: 0, encode: 0, render: 0 };

/** ffmpeg processes started by this process so far, by purpose (how many decodes a job cost). */
export function ffmpegStarts(): Readonly<Record<FfmpegPurpose, number>> {
  return { ...starts };
}

export interface FfmpegProcess {
  /** The raw output, when it goes to a pipe. */
  stdout: Readable;
  /** The raw input, when it comes from a pipe. Write errors (EPIPE once ffmpeg is gone) surface through `done`. */
  stdin: Writable;
  /**
   * Settles once ffmpeg has exited AND its pipes have closed, in whichever order they came: resolves
   * on exit status 0; rejects with the abort's reason when the signal aborted, else with a MediaError
   * giving ffmpeg's own error lines and its exit code or signal.
   */
  done: Promise<void>;
  /** Stops ffmpeg (SIGKILL); safe at any time and more than once. */
  kill(): void;
}

/**
 * Spawns ffmpeg directly (not through fluent-ffmpeg, whose piped output is failed whenever the
 * process exits more than 20 ms after the pipe closed: common on a loaded machine). Success is
 * decided by the exit status alone, once both the exit and the pipes' close have arrived. Logging
 * is at `error` level, so stderr holds ffmpeg's errors and nothing else: no banner, no statistics.
 */
export function runFfmpeg(
  args: string[],
  options: { purpose: FfmpegPurpose; failure: { code: MediaError['code']; retryable: boolean }; stdin?: boolean; stdout?: boolean; signal?: AbortSignal },
): FfmpegProcess {
  const { signal } = options;
  starts[options.purpose]++;
  const child = spawn(binaries().ffmpeg, ['-hide_banner', '-nostats', '-loglevel', 'error', ...args], {
    stdio: [options.stdin ? 'pipe' : 'ignore', options.stdout ? 'pipe' : 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr!.setEncoding('utf8').on('data', (text: string) => (stderr = (stderr + text).slice(-4000)));
  // Broken pipes are expected once ffmpeg has gone (killed, or refused its input): the exit status tells why.
  child.stdin?.on('error', () => undefined);
  child.stdout?.on('error', () => undefined);
  const kill = () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  };
  const done = new Promise<void>((resolve, reject) => {
    let settled = false;
    const settle = (error?: unknown) => {
      if (settled) return;
      settled = true;
      signal?.removeEventListener('abort', kill);
      // Finished before the kill landed: the abort still wins, the output is not wanted.
      if (signal?.aborted) reject(signal.reason);
      else if (error) reject(error);
      else resolve();
    };
    // 'error' alone: ffmpeg could not be started at all (a wrong FFMPEG_PATH).
    child.once('error', (error) => settle(new MediaError('ffmpeg_failed', `could not run ffmpeg: ${error.message}`, false)));
    // 'close' comes after both the exit and the end of every pipe.
    child.once('close', (code, killedBy) => {
      if (code === 0) return settle();
      const status = killedBy ? `killed by ${killedBy}` : `exit code ${code}`;
      settle(new MediaError(options.failure.code, `${DESCRIBED[options.purpose]} failed: ${ffmpegReason(stderr, status)}`, options.failure.retryable));
    });
  });
  // Callers await `done` when they need its verdict; one that stopped early has no use for it.
  done.catch(() => undefined);
  if (signal?.aborted) kill();
  else signal?.addEventListener('abort', kill, { once: true });
  return { stdout: child.stdout!, stdin: child.stdin!, done, kill };
}

/** ffmpeg's last error lines (at `-loglevel error` that is all stderr holds) and how it ended. */
function ffmpegReason(stderr: string, status: string): string {
  const lines = stderr.split('\n').map((l) => l.trim()).filter(Boolean).slice(-3);
  const said = lines.join(' | ');
  return `${said.length > 300 ? `…${said.slice(-300)}` : said || 'no error message'} (${status})`;
}
