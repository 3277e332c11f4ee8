/**
 * One object-storage interface with three drivers (b2, s3, local). Job outputs go under
 * attempt-scoped keys, so a stale attempt can never overwrite the result the orchestrator published.
 */

export type StorageDriverName = 'b2' | 's3' | 'local';

/** Uploads at or above this many MiB go through B2's large-file API unless the settings say otherwise. */
export const B2_DEFAULT_LARGE_FILE_MB = 100;
/** Part size of B2 large files in MiB unless the settings say otherwise (B2 may need larger parts). */
export const B2_DEFAULT_PART_SIZE_MB = 100;

export interface B2Settings {
  keyId: string;
  appKey: string;
  bucket: string;
  /** Where b2_authorize_account lives; later calls follow the apiUrl/downloadUrl it returns. */
  authUrl?: string;
  /** Uploads at or above this many bytes go through the large-file API, in parts. */
  largeFileThresholdBytes?: number;
  /** Size of each large-file part (B2's minimum is 5 MB). */
  partSizeBytes?: number;
}

export interface S3Settings {
  bucket: string;
  /** R2, MinIO, B2's S3 endpoint; absent means AWS. */
  endpoint?: string;
  region?: string;
  accessKeyId: string;
  secretAccessKey: string;
  forcePathStyle?: boolean;
}

export interface LocalSettings {
  /** The folder that plays the bucket. */
  root: string;
}

export type StorageSettings =
  | { driver: 'b2'; b2: B2Settings }
  | { driver: 's3'; s3: S3Settings }
  | { driver: 'local'; local: LocalSettings };

/** What an upload stored, verified against what was sent. */
export interface StoredObject {
  key: string;
  size: number;
  /** Hex SHA-1 of the content, computed while streaming it. */
  sha1: string;
  /** Where a reader finds it: `b2://bucket/key`, `s3://bucket/key` or `file:///abs/path`. */
  url: string;
}

export interface ObjectInfo {
  key: string;
  size: number;
  /**
   * The store's own fingerprint of the content, used to notice changes: B2's contentSha1 (or
   * large_file_sha1), S3's ETag, the local driver's SHA-1. Absent when the store has none.
   */
  checksum?: string;
  /** Hex SHA-1 when the store knows it (B2, local); lets a download be verified. */
  sha1?: string;
}

export interface TransferOptions {
  contentType?: string;
  signal?: AbortSignal;
}

export interface ObjectStorage {
  readonly driver: StorageDriverName;
  /** Proves the credentials work and the bucket is reachable; throws StorageError naming no secret. */
  check(): Promise<void>;
  /** Streams a local file to `key` (never whole in memory) and verifies size and checksum. */
  putFile(key: string, file: string, options?: TransferOptions): Promise<StoredObject>;
  /** Streams `key` into a local file, written whole or not at all, and verifies size (and SHA-1 when known). */
  getFile(key: string, file: string, options?: TransferOptions): Promise<ObjectInfo>;
  /** Every object whose key starts with `prefix`, following pagination. */
  list(prefix: string): Promise<ObjectInfo[]>;
}

/** A storage failure with a message fit for logs: never a key, secret or auth token. */
export class StorageError extends Error {
  constructor(
    message: string,
    /** True when trying again later may work (network, 5xx, 429). */
    readonly transient = false,
  ) {
    super(message);
    this.name = 'StorageError';
  }
}

/** `jobs/{jobId}/attempt-{n}/{name}`: each attempt writes its own keys. */
export function attemptKey(jobId: string, attempt: number, name: string): string {
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]*(\/[A-Za-z0-9][A-Za-z0-9._-]*)*$/.test(name)) {
    throw new StorageError(`invalid output name "${name}"`);
  }
  return `jobs/${jobId}/attempt-${attempt}/${name}`;
}
