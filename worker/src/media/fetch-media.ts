import { createWriteStream } from 'node:fs';
import { rm } from 'node:fs/promises';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import axios from 'axios';
import { AddressRefusedError, type AddressPolicy } from '@avatar-fleet/contracts';
import type { ObjectStorage } from '../storage/storage';
import { StorageError } from '../storage/storage';
import { MediaError } from './ffmpeg';

export interface FetchOptions {
  storage: ObjectStorage;
  scratchDir: string;
  /** Which addresses a URL may reach (public ones, plus MEDIA_FETCH_ALLOW), checked on every connection. */
  access: AddressPolicy;
  signal?: AbortSignal;
  /** Largest download accepted; a bigger source fails the job instead of filling the disk. */
  maxBytes?: number;
  timeoutMs?: number;
}

const DEFAULT_MAX_BYTES = 2 * 1024 ** 3;

/**
 * Brings a job's media reference (an http(s) URL or a storage key) into the scratch folder and
 * returns the local path, so ffmpeg always reads a local file and a network problem is reported as
 * one (retryable) rather than as a decode error.
 */
export async function fetchMedia(ref: string, name: string, options: FetchOptions): Promise<string> {
  const file = path.join(options.scratchDir, name);
  if (!/^https?:\/\//.test(ref)) {
    try {
      await options.storage.getFile(ref, file, { signal: options.signal });
      return file;
    } catch (error) {
      if (options.signal?.aborted) throw options.signal.reason;
      const transient = error instanceof StorageError && error.transient;
      throw new MediaError('media_unreadable', `storage key ${ref} could not be read: ${(error as Error).message}`, transient);
    }
  }
  const maxBytes = options.maxBytes ?? DEFAULT_MAX_BYTES;
  const host = new URL(ref).host;
  try {
    const res = await axios.get(ref, {
      ...options.access.agents(),
      // Through a proxy (HTTP_PROXY and the like) the proxy would resolve the name, past the guard.
      proxy: false,
      responseType: 'stream', signal: options.signal, timeout: options.timeoutMs ?? 30_000, maxRedirects: 5,
      maxContentLength: -1, validateStatus: () => true, // the size limit is enforced below, as a media error
    });
    if (res.status !== 200) {
      (res.data as NodeJS.ReadableStream & { destroy(): void }).destroy();
      // 404/403/410: the URL is wrong and stays wrong; 5xx and 429 may pass.
      throw new MediaError('media_unreadable', `GET ${host}: HTTP ${res.status}`, res.status >= 500 || res.status === 429);
    }
    const declared = Number(res.headers['content-length']);
    if (declared > maxBytes) {
      (res.data as NodeJS.ReadableStream & { destroy(): void }).destroy();
      throw new MediaError('media_too_long', `source is ${declared} bytes, over the ${maxBytes} byte limit`);
    }
    let received = 0;
    const stream = res.data as NodeJS.ReadableStream;
    stream.on('data', (chunk: Buffer) => {
      received += chunk.length;
      if (received > maxBytes) (stream as unknown as { destroy(e: Error): void }).destroy(new MediaError('media_too_long', `source over ${maxBytes} bytes`));
    });
    await pipeline(stream, createWriteStream(file));
    return file;
  } catch (error) {
    await rm(file, { force: true });
    if (options.signal?.aborted) throw options.signal.reason;
    if (error instanceof MediaError) throw error;
    // A refused address stays refused: the job's author must fix the URL (or an operator the allowlist).
    const refused = (error as { cause?: unknown }).cause ?? error;
    if (error instanceof AddressRefusedError || refused instanceof AddressRefusedError) {
      throw new MediaError('media_forbidden', `GET ${host}: ${(refused as Error).message} (allow it with MEDIA_FETCH_ALLOW)`, false);
    }
    // DNS failures, refused connections, time-outs: the source may be back later.
    throw new MediaError('media_unreadable', `GET ${host}: ${(error as Error).message}`, true);
  }
}
