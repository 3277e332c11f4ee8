import { createHash, randomBytes, type Hash } from 'node:crypto';
import { createReadStream, createWriteStream, promises as fsp } from 'node:fs';
import path from 'node:path';
import { Transform, type Readable, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { StorageError } from './storage';

/** A pass-through that hashes and counts what flows through it, so one read of a file serves both the upload and its checksum. */
export class HashingStream extends Transform {
  private readonly hash: Hash = createHash('sha1');
  /** Not `size`: lib-storage would read a Body's `size` as the length of the whole upload. */
  byteCount = 0;

  override _transform(chunk: Buffer, _encoding: BufferEncoding, done: TransformCallback): void {
    this.hash.update(chunk);
    this.byteCount += chunk.length;
    done(null, chunk);
  }

  /** Hex SHA-1 of everything seen; call once, after the stream ended. */
  digest(): string {
    return this.hash.digest('hex');
  }
}

export interface FileDigest {
  size: number;
  sha1: string;
  /** SHA-1 of each `partSize` slice, when a part size was asked for. */
  partSha1s: string[];
}

/** Streams a file once and returns its size and SHA-1 (and, with partSize, each part's SHA-1). */
export async function hashFile(file: string, options: { partSize?: number; signal?: AbortSignal } = {}): Promise<FileDigest> {
  const whole = createHash('sha1');
  const partSha1s: string[] = [];
  const partSize = options.partSize ?? 0;
  let part = partSize > 0 ? createHash('sha1') : undefined;
  let inPart = 0;
  let size = 0;
  const stream = createReadStream(file);
  const onAbort = (): void => {
    stream.destroy(new StorageError('aborted'));
  };
  options.signal?.addEventListener('abort', onAbort, { once: true });
  try {
    if (options.signal?.aborted) onAbort();
    for await (const data of stream) {
      let chunk = data as Buffer;
      whole.update(chunk);
      size += chunk.length;
      // Split the chunk at part boundaries so each part's hash covers exactly its slice.
      while (part && chunk.length > 0) {
        const take = Math.min(partSize - inPart, chunk.length);
        part.update(chunk.subarray(0, take));
        inPart += take;
        chunk = chunk.subarray(take);
        if (inPart === partSize) {
          partSha1s.push(part.digest('hex'));
          part = createHash('sha1');
          inPart = 0;
        }
      }
    }
  } finally {
    options.signal?.removeEventListener('abort', onAbort);
  }
  if (part && inPart > 0) partSha1s.push(part.digest('hex'));
  return { size, sha1: whole.digest('hex'), partSha1s };
}

/** A hidden sibling of `target`, so a rename into place stays on one filesystem. */
export function tempPathFor(target: string): string {
  return path.join(path.dirname(target), `.${path.basename(target)}.${randomBytes(6).toString('hex')}.partial`);
}

/** True for the temp names tempPathFor makes; listings skip them. */
export function isTempName(name: string): boolean {
  return /^\..+\.[0-9a-f]{12}\.partial$/.test(name);
}

export interface Expected {
  size?: number;
  sha1?: string;
}

/**
 * Writes `source` to a temp file beside `target`, verifies size and SHA-1 against `expected`, then renames
 * into place; on any failure the temp file is removed, so a partial download never sits at `target`.
 * `describe` names the operation in error messages; `beforeRename` may check the temp file further.
 */
export async function writeVerified(
  source: Readable,
  target: string,
  expected: Expected,
  describe: string,
  signal?: AbortSignal,
  beforeRename?: (temp: string, got: { size: number; sha1: string }) => Promise<void>,
): Promise<{ size: number; sha1: string }> {
  // The source may fail while the folder is being made, before pipeline() listens: keep that error
  // (an unheard 'error' event would crash the process) and report it as the cause.
  let early: unknown;
  const keepEarly = (err: unknown): void => {
    early ??= err;
  };
  source.on('error', keepEarly);
  const temp = tempPathFor(target);
  const hasher = new HashingStream();
  try {
    await fsp.mkdir(path.dirname(target), { recursive: true });
    try {
      await pipeline(source, hasher, createWriteStream(temp, { flags: 'wx' }), signal ? { signal } : {});
    } catch (err) {
      if (signal?.aborted) throw new StorageError(`${describe}: aborted`);
      const cause = early ?? err;
      if (cause instanceof StorageError) throw cause;
      throw new StorageError(`${describe}: transfer failed: ${errorText(cause)}`, isNetworkError(cause));
    }
    const sha1 = hasher.digest();
    if (expected.size !== undefined && hasher.byteCount !== expected.size) {
      throw new StorageError(`${describe}: received ${hasher.byteCount} bytes, the store reports ${expected.size}`, true);
    }
    if (expected.sha1 !== undefined && sha1 !== expected.sha1.toLowerCase()) {
      throw new StorageError(`${describe}: SHA-1 of the received bytes ${sha1} differs from the store's ${expected.sha1}`, true);
    }
    const got = { size: hasher.byteCount, sha1 };
    await beforeRename?.(temp, got);
    await fsp.rename(temp, target);
    return got;
  } catch (err) {
    source.destroy();
    await fsp.rm(temp, { force: true });
    if (signal?.aborted) throw new StorageError(`${describe}: aborted`);
    if (err instanceof StorageError) throw err;
    throw new StorageError(`${describe}: ${errorText(err)}`);
  } finally {
    source.off('error', keepEarly);
  }
}

/** A short description of a non-HTTP failure (fs, socket); carries no request headers. */
export function errorText(err: unknown): string {
  if (err instanceof Error) {
    const code = (err as NodeJS.ErrnoException).code;
    return code && !err.message.includes(code) ? `${code} ${err.message}` : err.message;
  }
  return String(err);
}

const TRANSIENT_CODES = new Set([
  'ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH',
  'ECONNABORTED', 'ERR_SOCKET_CONNECTION_TIMEOUT', 'ERR_STREAM_PREMATURE_CLOSE', 'UND_ERR_SOCKET', 'TimeoutError', 'RequestTimeout',
]);

/** Network-level failures worth trying again later. */
export function isNetworkError(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  const code = (err as NodeJS.ErrnoException).code;
  return (code !== undefined && TRANSIENT_CODES.has(code)) || TRANSIENT_CODES.has(err.name);
}

/** Replaces every occurrence of the given secrets, so no message can leak one even if a server echoes it. */
export function redact(message: string, secrets: Iterable<string | null | undefined>): string {
  let out = message;
  for (const secret of secrets) {
    if (secret && secret.length >= 4) out = out.split(secret).join('***');
  }
  return out;
}
