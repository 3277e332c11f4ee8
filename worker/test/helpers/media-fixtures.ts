import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { binaries } from '../../src/media/ffmpeg';

/** A synthetic clip made by ffmpeg itself (test pattern + a tone), so no media file is committed for it. */
export function makeClip(dir: string, options: { seconds: number; width?: number; height?: number; fps?: number; audio?: boolean; video?: boolean; name?: string }): string {
  const { seconds, width = 320, height = 240, fps = 25 } = options;
  const file = path.join(dir, options.name ?? `clip-${seconds}s-${width}x${height}.${options.video === false ? 'wav' : 'mp4'}`);
  const args = ['-y', '-loglevel', 'error'];
  if (options.video !== false) args.push('-f', 'lavfi', '-i', `testsrc2=size=${width}x${height}:rate=${fps}:duration=${seconds}`);
  if (options.audio !== false) args.push('-f', 'lavfi', '-i', `sine=frequency=440:sample_rate=44100:duration=${seconds}`);
  if (options.video !== false) args.push('-c:v', 'libx264', '-preset', 'ultrafast', '-pix_fmt', 'yuv420p');
  if (options.audio !== false) args.push('-c:a', options.video === false ? 'pcm_s16le' : 'aac');
  execFileSync(binaries().ffmpeg, [...args, file]);
  return file;
}
