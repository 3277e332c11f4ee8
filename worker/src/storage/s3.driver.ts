import {
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  S3Client,
  type ListObjectsV2CommandOutput,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { createReadStream } from 'node:fs';
import path from 'node:path';
import { pipeline, type Readable } from 'node:stream';
import { errorText, HashingStream, isNetworkError, redact, writeVerified } from './checksum';
import { StorageError, type ObjectInfo, type ObjectStorage, type S3Settings, type StoredObject, type TransferOptions } from './storage';

export interface S3Tuning {
  /** Objects per ListObjectsV2 page (S3's maximum is 1000). */
  listPageSize?: number;
  /** Multipart part size for uploads; bounds memory at about queueSize × partSize. */
  partSizeBytes?: number;
  queueSize?: number;
}

/** Any S3-compatible store: AWS, R2, MinIO, B2's S3 endpoint. */
export class S3Storage implements ObjectStorage {
  readonly driver = 's3' as const;
  private readonly client: S3Client;
  private readonly bucket: string;
  private readonly secrets: string[];

  constructor(
    settings: S3Settings,
    private readonly tuning: S3Tuning = {},
  ) {
    this.bucket = settings.bucket;
    this.secrets = [settings.accessKeyId, settings.secretAccessKey];
    this.client = new S3Client({
      region: settings.region ?? 'us-east-1',
      ...(settings.endpoint ? { endpoint: settings.endpoint } : {}),
      forcePathStyle: settings.forcePathStyle ?? Boolean(settings.endpoint),
      credentials: { accessKeyId: settings.accessKeyId, secretAccessKey: settings.secretAccessKey },
      // With the SDK's default checksums, streamed bodies are sent aws-chunked with trailers, which
      // stores that don't speak it (s3rver, some S3-compatibles) keep as part of the object.
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
    });
  }

  async check(): Promise<void> {
    try {
      await this.client.send(new HeadBucketCommand({ Bucket: this.bucket }));
    } catch (err) {
      // HeadBucket answers without a body, so the SDK can only name the status; say what it means.
      const status = (err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
      const hint = status === 404 ? 'no such bucket' : status === 403 || status === 401 ? 'access denied: wrong credentials, or no permission on the bucket' : undefined;
      if (hint) throw new StorageError(redact(`s3 check bucket "${this.bucket}": ${status} ${hint}`, this.secrets));
      throw this.fail(err, `check bucket "${this.bucket}"`);
    }
  }

  async putFile(key: string, file: string, options: TransferOptions = {}): Promise<StoredObject> {
    const what = `putFile "${key}" to bucket "${this.bucket}"`;
    const hasher = new HashingStream();
    const source = createReadStream(file);
    // The hasher sees exactly the bytes the SDK reads, so size and SHA-1 come from the upload itself.
    const body = pipeline(source, hasher, () => undefined);
    const abort = new AbortController();
    const onAbort = (): void => abort.abort();
    options.signal?.addEventListener('abort', onAbort, { once: true });
    try {
      if (options.signal?.aborted) throw new StorageError(`s3 ${what}: aborted`);
      const upload = new Upload({
        client: this.client,
        params: { Bucket: this.bucket, Key: key, Body: body, ContentType: options.contentType },
        partSize: this.tuning.partSizeBytes ?? 8 * 1024 * 1024,
        queueSize: this.tuning.queueSize ?? 4,
        leavePartsOnError: false,
        abortController: abort,
      });
      await upload.done();
      const head = await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: key }), { abortSignal: abort.signal });
      const sha1 = hasher.digest();
      if (head.ContentLength !== hasher.byteCount) {
        throw new StorageError(`s3 ${what}: the store holds ${head.ContentLength} bytes, ${hasher.byteCount} were sent`, true);
      }
      return { key, size: hasher.byteCount, sha1, url: `s3://${this.bucket}/${key}` };
    } catch (err) {
      if (options.signal?.aborted) throw new StorageError(`s3 ${what}: aborted`);
      throw this.fail(err, what);
    } finally {
      options.signal?.removeEventListener('abort', onAbort);
      source.destroy();
    }
  }

  async getFile(key: string, file: string, options: TransferOptions = {}): Promise<ObjectInfo> {
    const what = `getFile "${key}" from bucket "${this.bucket}"`;
    let body: Readable;
    let size: number | undefined;
    let etag: string | undefined;
    try {
      const res = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: key }), { abortSignal: options.signal });
      body = res.Body as Readable;
      size = res.ContentLength;
      etag = unquote(res.ETag);
    } catch (err) {
      if (options.signal?.aborted) throw new StorageError(`s3 ${what}: aborted`);
      throw this.fail(err, what);
    }
    const got = await writeVerified(body, path.resolve(file), { size }, `s3 ${what}`, options.signal);
    return { key, size: got.size, sha1: got.sha1, ...(etag ? { checksum: etag } : {}) };
  }

  async list(prefix: string): Promise<ObjectInfo[]> {
    const out: ObjectInfo[] = [];
    let token: string | undefined;
    do {
      let page: ListObjectsV2CommandOutput;
      try {
        page = await this.client.send(
          new ListObjectsV2Command({ Bucket: this.bucket, Prefix: prefix, ContinuationToken: token, MaxKeys: this.tuning.listPageSize ?? 1000 }),
        );
      } catch (err) {
        throw this.fail(err, `list "${prefix}" in bucket "${this.bucket}"`);
      }
      for (const item of page.Contents ?? []) {
        if (item.Key === undefined) continue;
        const etag = unquote(item.ETag);
        out.push({ key: item.Key, size: item.Size ?? 0, ...(etag ? { checksum: etag } : {}) });
      }
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
    return out;
  }

  /** A StorageError from an SDK or stream failure: status and S3's error code, never credentials. */
  private fail(err: unknown, what: string): StorageError {
    if (err instanceof StorageError) return new StorageError(redact(err.message, this.secrets), err.transient);
    const e = err as { name?: string; message?: string; $metadata?: { httpStatusCode?: number }; $retryable?: unknown };
    const status = e.$metadata?.httpStatusCode;
    let reason: string;
    if (status !== undefined && status >= 300) {
      const name = e.name && e.name !== 'Error' ? ` ${e.name}` : '';
      const detail = e.message && e.message !== 'UnknownError' && e.message !== e.name ? `: ${e.message}` : '';
      reason = `${status}${name}${detail}`;
    } else {
      reason = errorText(err);
    }
    const transient = (status !== undefined && (status >= 500 || status === 429)) || isNetworkError(err) || Boolean(e.$retryable);
    return new StorageError(redact(`s3 ${what}: ${reason}`, this.secrets), transient);
  }
}

function unquote(etag: string | undefined): string | undefined {
  return etag?.replace(/^"|"$/g, '') || undefined;
}
