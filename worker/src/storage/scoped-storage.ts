import { STORAGE_PREFIX_PATTERN } from '@avatar-fleet/contracts';
import { StorageError, type ObjectInfo, type ObjectStorage, type StoredObject, type TransferOptions } from './storage';

/**
 * One owner's view of the bucket, for the jobs of that owner: every key a pipeline names is put
 * under the owner's prefix (`tenants/<owner>/`), and every key it gets back is relative to it, so
 * a job sees its owner's namespace as if it were the whole bucket and a key from one job's result
 * works as another job's input. A key that could leave the prefix (a `..` or `.` segment, an empty
 * segment, a leading `/`, a backslash) is refused before any driver sees it: S3 and B2 keep such
 * keys literally, but a local folder, a CDN or a sync tool in front of the bucket may not.
 */
export class ScopedStorage implements ObjectStorage {
  readonly driver: ObjectStorage['driver'];

  constructor(
    private readonly inner: ObjectStorage,
    readonly prefix: string,
  ) {
    if (!STORAGE_PREFIX_PATTERN.test(prefix)) throw new StorageError(`storage prefix "${prefix}" is not tenants/<owner>/`);
    this.driver = inner.driver;
  }

  check(): Promise<void> {
    return this.inner.check();
  }

  /** `url` stays the object's real location; `key` is the one the job named. */
  async putFile(key: string, file: string, options?: TransferOptions): Promise<StoredObject> {
    const stored = await this.inner.putFile(this.scoped(key), file, options);
    return { ...stored, key };
  }

  async getFile(key: string, file: string, options?: TransferOptions): Promise<ObjectInfo> {
    const info = await this.inner.getFile(this.scoped(key), file, options);
    return { ...info, key };
  }

  /** A listing prefix may be empty (the whole namespace) or end in `/` (a folder). */
  async list(prefix: string): Promise<ObjectInfo[]> {
    const folder = prefix === '' || prefix.endsWith('/');
    if (prefix !== '') checkKey(folder ? prefix.slice(0, -1) : prefix);
    const listed = await this.inner.list(this.prefix + prefix);
    return listed.map((info) => ({ ...info, key: info.key.slice(this.prefix.length) }));
  }

  private scoped(key: string): string {
    checkKey(key);
    return this.prefix + key;
  }
}

/** Throws unless `key` is plain relative segments, none of them empty, `.` or `..`. */
function checkKey(key: string): void {
  const plain = key !== '' && !key.includes('\\') && !key.includes('\0') && key.split('/').every((s) => s !== '' && s !== '.' && s !== '..');
  // Never the key itself in the message: it came from a job's author and goes to logs.
  if (!plain) throw new StorageError('storage key refused: it must be relative segments without empty, . or .. parts (it would leave the owner\'s namespace)');
}
