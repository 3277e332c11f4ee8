import { constants, createReadStream, promises as fsp } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { errorText, hashFile, isTempName, tempPathFor, writeVerified } from './checksum';
import { StorageError, type LocalSettings, type ObjectInfo, type ObjectStorage, type StoredObject, type TransferOptions } from './storage';

/** A folder that plays the bucket: for development, tests and single-machine setups. */
export class LocalStorage implements ObjectStorage {
  readonly driver = 'local' as const;
  private readonly root: string;

  constructor(settings: LocalSettings) {
    if (!settings.root) throw new StorageError('local storage: root folder is not set');
    this.root = path.resolve(settings.root);
  }

  async check(): Promise<void> {
    try {
      await fsp.mkdir(this.root, { recursive: true });
      await fsp.access(this.root, constants.W_OK);
      // access() can say yes on read-only mounts; writing a probe is the proof.
      const probe = tempPathFor(path.join(this.root, 'check'));
      await fsp.writeFile(probe, '');
      await fsp.rm(probe, { force: true });
    } catch (err) {
      throw new StorageError(`local check of root ${this.root}: not a writable folder: ${errorText(err)}`);
    }
  }

  async putFile(key: string, file: string, options: TransferOptions = {}): Promise<StoredObject> {
    const what = `local putFile "${key}"`;
    const target = this.pathOf(key);
    // Re-read what landed on disk before it takes the key's place: the stored bytes must match the sent ones.
    const written = await writeVerified(createReadStream(file), target, {}, what, options.signal, async (temp, sent) => {
      const stored = await hashFile(temp, { signal: options.signal });
      if (stored.size !== sent.size || stored.sha1 !== sent.sha1) {
        throw new StorageError(`${what}: stored ${stored.size} bytes (SHA-1 ${stored.sha1}), sent ${sent.size} (SHA-1 ${sent.sha1})`, true);
      }
    });
    return { key, size: written.size, sha1: written.sha1, url: pathToFileURL(target).href };
  }

  async getFile(key: string, file: string, options: TransferOptions = {}): Promise<ObjectInfo> {
    const what = `local getFile "${key}"`;
    const source = this.pathOf(key);
    let size: number;
    try {
      const stat = await fsp.stat(source);
      if (!stat.isFile()) throw Object.assign(new Error('not a file'), { code: 'ENOENT' });
      size = stat.size;
    } catch (err) {
      const missing = (err as NodeJS.ErrnoException).code === 'ENOENT';
      throw new StorageError(missing ? `${what}: no such object` : `${what}: ${errorText(err)}`);
    }
    const got = await writeVerified(createReadStream(source), path.resolve(file), { size }, what, options.signal);
    return { key, size: got.size, checksum: got.sha1, sha1: got.sha1 };
  }

  async list(prefix: string): Promise<ObjectInfo[]> {
    // Walk only the folder the prefix points into; the rest cannot match.
    const slash = prefix.lastIndexOf('/');
    const dirKey = slash >= 0 ? prefix.slice(0, slash) : '';
    const start = dirKey ? this.pathOf(dirKey) : this.root;
    const keys: string[] = [];
    try {
      await this.walk(start, dirKey, prefix, keys);
    } catch (err) {
      throw new StorageError(`local list "${prefix}": ${errorText(err)}`);
    }
    keys.sort();
    const out: ObjectInfo[] = [];
    for (const key of keys) {
      try {
        const digest = await hashFile(this.pathOf(key));
        out.push({ key, size: digest.size, checksum: digest.sha1, sha1: digest.sha1 });
      } catch (err) {
        // Removed between the walk and the hash: it is simply no longer listed.
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw new StorageError(`local list "${prefix}": ${errorText(err)}`);
      }
    }
    return out;
  }

  private async walk(dir: string, dirKey: string, prefix: string, keys: string[]): Promise<void> {
    let entries;
    try {
      entries = await fsp.readdir(dir, { withFileTypes: true });
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'ENOTDIR') return;
      throw err;
    }
    for (const entry of entries) {
      const key = dirKey ? `${dirKey}/${entry.name}` : entry.name;
      if (entry.isDirectory()) {
        if (key.startsWith(prefix) || prefix.startsWith(key + '/')) await this.walk(path.join(dir, entry.name), key, prefix, keys);
      } else if (entry.isFile() && !isTempName(entry.name) && key.startsWith(prefix)) {
        keys.push(key);
      }
    }
  }

  /** Maps a key to its path under root; a key that would land outside root is refused. */
  private pathOf(key: string): string {
    const segments = key.split('/');
    const bad =
      key.length === 0 ||
      key.includes('\0') ||
      key.includes('\\') ||
      path.isAbsolute(key) ||
      segments.some((s) => s === '' || s === '.' || s === '..');
    const resolved = path.resolve(this.root, ...segments);
    const rel = path.relative(this.root, resolved);
    if (bad || rel === '' || rel.startsWith('..') || path.isAbsolute(rel)) {
      throw new StorageError(`local storage: key "${key}" is not a plain relative path under the root`);
    }
    return resolved;
  }
}
