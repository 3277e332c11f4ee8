import B2 from 'backblaze-b2';
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import path from 'node:path';
import { pipeline, type Readable } from 'node:stream';
import { errorText, HashingStream, hashFile, isNetworkError, redact, writeVerified } from './checksum';
import { B2_DEFAULT_LARGE_FILE_MB, B2_DEFAULT_PART_SIZE_MB, StorageError, type B2Settings, type ObjectInfo, type ObjectStorage, type StoredObject, type TransferOptions } from './storage';

const MiB = 1024 * 1024;
const B2_MAX_PARTS = 10_000;

export interface B2Tuning {
  /** Names per b2_list_file_names page (B2 bills each 1000 as one transaction). */
  listPageSize?: number;
  /** Time limit for JSON API calls; transfers are bounded by the caller's signal instead. */
  apiTimeoutMs?: number;
}

/** What we need out of a failed call, read without keeping the request (its config holds the auth token). */
interface Failure {
  status?: number;
  code?: string;
  message?: string;
  transient: boolean;
}

/** Backblaze B2 through its native API (v2), using the backblaze-b2 client. */
export class B2Storage implements ObjectStorage {
  readonly driver = 'b2' as const;
  private readonly b2: B2;
  private authorizing?: Promise<void>;
  private bucketId?: string;
  private minPartSize = 0;
  /** Recent upload tokens, redacted like the account token should a server ever echo one; bounded, as a worker runs for days. */
  private readonly uploadTokens: string[] = [];

  constructor(
    private readonly settings: B2Settings,
    private readonly tuning: B2Tuning = {},
  ) {
    if (!settings.keyId || !settings.appKey) throw new StorageError('b2 storage: key id or application key is not set');
    // Retries stay with the caller, who sees StorageError.transient; the client's own would re-send
    // requests whose stream bodies are already spent.
    this.b2 = new B2({ applicationKeyId: settings.keyId, applicationKey: settings.appKey, retry: { retries: 0 } });
  }

  async check(): Promise<void> {
    this.bucketId = undefined;
    await this.bucket();
  }

  async putFile(key: string, file: string, options: TransferOptions = {}): Promise<StoredObject> {
    const what = `putFile "${key}" to bucket "${this.settings.bucket}"`;
    const threshold = this.settings.largeFileThresholdBytes ?? B2_DEFAULT_LARGE_FILE_MB * MiB;
    const size = await fileSize(file).catch((err: unknown) => {
      throw new StorageError(`b2 ${what}: cannot read ${file}: ${errorText(err)}`);
    });
    const bucketId = await this.bucket();
    const partSize = Math.max(this.settings.partSizeBytes ?? B2_DEFAULT_PART_SIZE_MB * MiB, this.minPartSize, Math.ceil(size / B2_MAX_PARTS));
    // B2 wants at least two parts in a large file; anything smaller goes up in one request.
    const stored = size >= threshold && size > partSize
      ? await this.putLarge(key, file, bucketId, partSize, what, options)
      : await this.putSmall(key, file, bucketId, what, options);
    return { key, size: stored.size, sha1: stored.sha1, url: `b2://${this.settings.bucket}/${key}` };
  }

  async getFile(key: string, file: string, options: TransferOptions = {}): Promise<ObjectInfo> {
    const what = `getFile "${key}" from bucket "${this.settings.bucket}"`;
    const res = await this.api(what, () =>
      this.b2.downloadFileByName({
        bucketName: this.settings.bucket,
        fileName: key,
        responseType: 'stream',
        // Raw bytes: the SHA-1 and length B2 reports are of the stored, not the decoded, content.
        axios: { signal: options.signal, decompress: false, maxContentLength: -1 },
      }),
      options.signal,
    );
    const headers = res.headers as Record<string, string | undefined>;
    const sha1 = asSha1(headers['x-bz-content-sha1']) ?? asSha1(headers['x-bz-info-large_file_sha1']);
    const length = headers['content-length'] !== undefined ? Number(headers['content-length']) : undefined;
    const got = await writeVerified(res.data as Readable, path.resolve(file), { size: length, sha1 }, `b2 ${what}`, options.signal);
    return { key, size: got.size, sha1: got.sha1, ...(sha1 ? { checksum: sha1 } : {}) };
  }

  async list(prefix: string): Promise<ObjectInfo[]> {
    const what = `list "${prefix}" in bucket "${this.settings.bucket}"`;
    const bucketId = await this.bucket();
    const out: ObjectInfo[] = [];
    let start: string | null = '';
    while (start !== null) {
      const startFileName: string = start;
      const res = await this.api(what, () =>
        this.b2.listFileNames({
          bucketId, prefix, startFileName, maxFileCount: this.tuning.listPageSize ?? 1000, delimiter: '',
          axios: this.apiAxios(),
        }),
      );
      const data = res.data as { files?: B2File[]; nextFileName?: string | null };
      for (const f of data.files ?? []) {
        if (f.action !== 'upload') continue;
        const sha1 = fileSha1(f);
        out.push({ key: f.fileName, size: Number(f.contentLength), ...(sha1 ? { checksum: sha1, sha1 } : {}) });
      }
      start = data.nextFileName ?? null;
    }
    return out;
  }

  private async putSmall(key: string, file: string, bucketId: string, what: string, options: TransferOptions): Promise<{ size: number; sha1: string }> {
    // The SHA-1 goes in a header, before the body, so it takes one pass of its own; B2 checks the body against it.
    const digest = await this.hash(file, what, options.signal);
    const res = await this.api(what, async () => {
      const url = (await this.b2.getUploadUrl({ bucketId, axios: this.apiAxios(options.signal) })).data as UploadUrl;
      this.remember(url.authorizationToken);
      return this.sendBody(file, digest, 0, digest.size, what, (data) =>
        this.b2.uploadFile({
          uploadUrl: url.uploadUrl, uploadAuthToken: url.authorizationToken, fileName: key, data, contentLength: digest.size,
          hash: digest.sha1, ...(options.contentType ? { mime: options.contentType } : {}),
          axios: { signal: options.signal, maxBodyLength: -1 },
        }),
      );
    }, options.signal);
    const f = res.data as B2File;
    if (Number(f.contentLength) !== digest.size || asSha1(f.contentSha1) !== digest.sha1) {
      throw new StorageError(`b2 ${what}: B2 stored ${f.contentLength} bytes with SHA-1 ${f.contentSha1}, sent ${digest.size} with ${digest.sha1}`, true);
    }
    return digest;
  }

  private async putLarge(
    key: string, file: string, bucketId: string, partSize: number, what: string, options: TransferOptions,
  ): Promise<{ size: number; sha1: string }> {
    const digest = await this.hash(file, what, options.signal, partSize);
    const started = await this.api(`${what}: b2_start_large_file`, () =>
      this.b2.startLargeFile({
        bucketId, fileName: key, ...(options.contentType ? { contentType: options.contentType } : {}),
        // The client sends no fileInfo of its own; merged into the request body, this records the whole file's SHA-1.
        axiosOverride: { ...this.apiAxios(options.signal), data: { fileInfo: { large_file_sha1: digest.sha1 } } },
      } as Parameters<B2['startLargeFile']>[0]),
    options.signal);
    const fileId = (started.data as { fileId: string }).fileId;
    try {
      for (let i = 0; i < digest.partSha1s.length; i++) {
        const start = i * partSize;
        const length = Math.min(partSize, digest.size - start);
        const partSha1 = digest.partSha1s[i] as string;
        const part = { size: length, sha1: partSha1 };
        const partWhat = `${what}: part ${i + 1} of ${digest.partSha1s.length}`;
        const res = await this.api(partWhat, async () => {
          const url = (await this.b2.getUploadPartUrl({ fileId, axios: this.apiAxios(options.signal) })).data as UploadUrl;
          this.remember(url.authorizationToken);
          // Only this part's slice is read, streamed: memory stays bounded whatever the part size.
          return this.sendBody(file, part, start, length, partWhat, (data) =>
            this.b2.uploadPart({
              partNumber: i + 1, uploadUrl: url.uploadUrl, uploadAuthToken: url.authorizationToken, data, contentLength: length,
              hash: partSha1, axios: { signal: options.signal, maxBodyLength: -1 },
            }),
          );
        }, options.signal);
        const stored = res.data as { contentLength: number; contentSha1: string };
        if (Number(stored.contentLength) !== length || asSha1(stored.contentSha1) !== partSha1) {
          throw new StorageError(`b2 ${partWhat}: B2 stored ${stored.contentLength} bytes with SHA-1 ${stored.contentSha1}`, true);
        }
      }
      const finished = await this.api(`${what}: b2_finish_large_file`, () =>
        this.b2.finishLargeFile({ fileId, partSha1Array: digest.partSha1s, axios: this.apiAxios(options.signal) }),
      options.signal);
      const f = finished.data as B2File;
      if (Number(f.contentLength) !== digest.size || fileSha1(f) !== digest.sha1) {
        throw new StorageError(`b2 ${what}: B2 assembled ${f.contentLength} bytes with SHA-1 ${fileSha1(f)}, sent ${digest.size} with ${digest.sha1}`, true);
      }
      return digest;
    } catch (err) {
      // Unfinished large files hold storage until cancelled; the original failure is what the caller needs to see.
      await this.b2.cancelLargeFile({ fileId, axios: this.apiAxios() }).catch(() => undefined);
      throw err;
    }
  }

  /**
   * Streams bytes [start, start+length) of `file` as a request body through a hasher, and checks afterwards
   * that what was read is what the earlier pass hashed (the file did not change in between).
   */
  private async sendBody<T>(
    file: string, expected: { size: number; sha1: string }, start: number, length: number, what: string,
    send: (data: Buffer) => Promise<T>,
  ): Promise<T> {
    if (length === 0) return send(Buffer.alloc(0));
    const source = createReadStream(file, { start, end: start + length - 1 });
    const hasher = new HashingStream();
    const body = pipeline(source, hasher, () => undefined);
    try {
      // The typings say Buffer; the client hands `data` to axios, which streams a Readable with the given Content-Length.
      const res = await send(body as unknown as Buffer);
      const sha1 = hasher.digest();
      if (hasher.byteCount !== expected.size || sha1 !== expected.sha1) {
        throw new StorageError(`b2 ${what}: the file changed while it was being uploaded`);
      }
      return res;
    } finally {
      source.destroy();
      hasher.destroy();
    }
  }

  private async hash(file: string, what: string, signal?: AbortSignal, partSize?: number) {
    try {
      return await hashFile(file, { signal, ...(partSize ? { partSize } : {}) });
    } catch (err) {
      if (signal?.aborted) throw new StorageError(`b2 ${what}: aborted`);
      throw new StorageError(`b2 ${what}: cannot read ${file}: ${errorText(err)}`);
    }
  }

  /** The bucket's id, looked up once (b2_list_buckets filtered by name). */
  private async bucket(): Promise<string> {
    if (this.bucketId) return this.bucketId;
    const name = this.settings.bucket;
    const res = await this.api(`find bucket "${name}"`, () => this.b2.getBucket({ bucketName: name, axios: this.apiAxios() }));
    const found = ((res.data as { buckets?: { bucketId: string; bucketName: string }[] }).buckets ?? []).find((b) => b.bucketName === name);
    if (!found) throw new StorageError(`b2 find bucket "${name}": no such bucket visible to this application key`);
    this.bucketId = found.bucketId;
    return found.bucketId;
  }

  /**
   * Runs one B2 call, authorizing first when needed; an expired token is renewed and the call made once
   * more. Every failure becomes a StorageError built from status and B2's code/message alone.
   */
  private async api<T>(what: string, call: () => Promise<T>, signal?: AbortSignal): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      if (!this.session.authorizationToken) await this.authorize();
      try {
        return await call();
      } catch (err) {
        if (err instanceof StorageError) throw err;
        if (signal?.aborted) throw new StorageError(`b2 ${what}: aborted`);
        const failure = await readFailure(err);
        if (attempt === 0 && failure.status === 401 && failure.code === 'expired_auth_token') {
          this.session.authorizationToken = null;
          continue;
        }
        throw this.error(what, failure);
      }
    }
  }

  private authorize(): Promise<void> {
    this.authorizing ??= (async () => {
      try {
        const url = authorizeUrl(this.settings.authUrl);
        const res = await this.b2.authorize({ axios: this.apiAxios(), ...(url ? { axiosOverride: { url } } : {}) });
        this.minPartSize = Number(res.data?.absoluteMinimumPartSize) || 0;
      } catch (err) {
        this.session.authorizationToken = null;
        throw this.error(`authorize for bucket "${this.settings.bucket}"`, await readFailure(err));
      } finally {
        this.authorizing = undefined;
      }
    })();
    return this.authorizing;
  }

  private remember(uploadToken: string): void {
    this.uploadTokens.push(uploadToken);
    if (this.uploadTokens.length > 16) this.uploadTokens.shift();
  }

  /** The client keeps its auth token on itself (untyped): cleared, it makes the next call authorize again. */
  private get session(): { authorizationToken: string | null } {
    return this.b2 as unknown as { authorizationToken: string | null };
  }

  private apiAxios(signal?: AbortSignal): Record<string, unknown> {
    return { timeout: this.tuning.apiTimeoutMs ?? 60_000, ...(signal ? { signal } : {}) };
  }

  private error(what: string, f: Failure): StorageError {
    const detail = f.status !== undefined ? `${f.status}${f.code ? ` ${f.code}` : ''}${f.message ? `: ${f.message}` : ''}` : (f.message ?? 'failed');
    const secrets = [this.settings.keyId, this.settings.appKey, this.session.authorizationToken, ...this.uploadTokens];
    return new StorageError(redact(`b2 ${what}: ${detail}`, secrets), f.transient);
  }
}

interface B2File {
  fileName: string;
  contentLength: number;
  contentSha1?: string;
  fileInfo?: Record<string, string>;
  action?: string;
}

interface UploadUrl {
  uploadUrl: string;
  authorizationToken: string;
}

/** Accepts the full b2_authorize_account URL or just the API host. */
function authorizeUrl(authUrl: string | undefined): string | undefined {
  if (!authUrl) return undefined;
  const trimmed = authUrl.replace(/\/+$/, '');
  return trimmed.endsWith('/b2_authorize_account') ? trimmed : `${trimmed}/b2api/v2/b2_authorize_account`;
}

/** A hex SHA-1 from B2's header or field; "none" (large files) and anything else is no SHA-1. */
function asSha1(value: string | undefined | null): string | undefined {
  const hex = value?.replace(/^unverified:/, '').toLowerCase();
  return hex && /^[0-9a-f]{40}$/.test(hex) ? hex : undefined;
}

function fileSha1(f: B2File): string | undefined {
  return asSha1(f.contentSha1) ?? asSha1(f.fileInfo?.['large_file_sha1']);
}

async function fileSize(file: string): Promise<number> {
  const s = await stat(file);
  if (!s.isFile()) throw new Error('not a regular file');
  return s.size;
}

/** Status, B2's JSON code/message and a transient flag, from an axios error or anything else. */
async function readFailure(err: unknown): Promise<Failure> {
  const e = err as { isAxiosError?: boolean; code?: string; message?: string; response?: { status: number; data?: unknown } };
  if (!e?.isAxiosError) return { message: errorText(err), transient: isNetworkError(err) };
  if (!e.response) {
    const transient = isNetworkError(err) || e.code === 'ERR_NETWORK';
    return { message: e.code && e.message && !e.message.includes(e.code) ? `${e.code} ${e.message}` : (e.message ?? e.code), transient };
  }
  const status = e.response.status;
  let body = e.response.data;
  if (body && typeof (body as Readable).pipe === 'function') body = await readSmall(body as Readable);
  if (typeof body === 'string' || Buffer.isBuffer(body)) {
    try {
      body = JSON.parse(body.toString());
    } catch {
      body = undefined;
    }
  }
  const json = (body ?? {}) as { code?: unknown; message?: unknown };
  return {
    status,
    ...(typeof json.code === 'string' ? { code: json.code } : {}),
    ...(typeof json.message === 'string' && json.message ? { message: json.message.slice(0, 300) } : {}),
    transient: status >= 500 || status === 429 || status === 408,
  };
}

/** The start of an error response body; B2's are small JSON documents. */
async function readSmall(stream: Readable, limit = 64 * 1024): Promise<string> {
  const chunks: Buffer[] = [];
  let total = 0;
  try {
    for await (const chunk of stream) {
      chunks.push(chunk as Buffer);
      total += (chunk as Buffer).length;
      if (total >= limit) break;
    }
  } catch {
    // A broken error body leaves the status to speak for itself.
  } finally {
    stream.destroy();
  }
  return Buffer.concat(chunks).toString('utf8');
}
