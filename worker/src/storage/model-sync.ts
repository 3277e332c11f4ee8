import { mkdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { errorText, hashFile, tempPathFor } from './checksum';
import { StorageError, type ObjectInfo, type ObjectStorage } from './storage';

/**
 * At worker start, before claiming jobs: copy model files from the private model bucket into MODEL_DIR,
 * fetching only what is missing or changed. A manifest in MODEL_DIR remembers what each local file was
 * copied from, so an unchanged model costs one listing, not a download or a hash of gigabytes.
 */

export interface ModelSyncOptions {
  storage: ObjectStorage;
  /** Folder in the bucket holding the sources; may be empty. */
  prefix: string;
  /** Sub-folders of `prefix` to copy; `{prefix}/{s}/x` lands at `{modelDir}/{s}/x`. */
  sources: string[];
  modelDir: string;
  log: (line: string) => void;
  signal?: AbortSignal;
  /** Extra attempts after a transient failure (network, 5xx, 429); default 2. */
  retries?: number;
  /** Wait before the first retry, doubled for each further one; default 1000 ms. */
  retryDelayMs?: number;
}

export interface ModelSyncReport {
  /** MODEL_DIR-relative paths fetched this time. */
  downloaded: string[];
  unchanged: string[];
  bytesDownloaded: number;
}

/** Model sync could not complete; the message names the cause (never a credential). */
export class ModelSyncError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ModelSyncError';
  }
}

export const MANIFEST_FILE = '.model-sync.json';

interface ManifestEntry {
  size: number;
  /** The store's fingerprint when the file was copied (B2 SHA-1, S3 ETag). */
  checksum?: string;
  /** SHA-1 of the local copy. */
  sha1: string;
}

interface Manifest {
  version: 1;
  files: Record<string, ManifestEntry>;
}

interface Remote extends ObjectInfo {
  /** Path under MODEL_DIR, with `/`. */
  rel: string;
}

export async function syncModels(options: ModelSyncOptions): Promise<ModelSyncReport> {
  try {
    return await sync(options);
  } catch (err) {
    if (err instanceof ModelSyncError) throw err;
    throw new ModelSyncError(`model sync: ${err instanceof StorageError ? err.message : errorText(err)}`);
  }
}

async function sync(options: ModelSyncOptions): Promise<ModelSyncReport> {
  const started = Date.now();
  const { storage, log, signal } = options;
  const prefix = cleanPath(options.prefix, 'MODEL_SYNC_PREFIX', true);
  const sources = [...new Set(options.sources.map((s) => cleanPath(s, 'MODEL_SYNC_SOURCES', false)))];
  if (sources.length === 0) throw new ModelSyncError('model sync: MODEL_SYNC_SOURCES names no source');
  const modelDir = path.resolve(options.modelDir);
  try {
    await mkdir(modelDir, { recursive: true });
  } catch (err) {
    throw new ModelSyncError(`model sync: cannot create MODEL_DIR ${modelDir}: ${errorText(err)}`);
  }
  const manifest = await readManifest(modelDir, log);

  const remote: Remote[] = [];
  for (const source of sources) {
    const listPrefix = prefix ? `${prefix}/${source}/` : `${source}/`;
    const objects = await attempt(options, `listing '${listPrefix}'`, () => storage.list(listPrefix));
    // Folder markers (S3 consoles) and .bzEmpty (B2's web UI) are not model files.
    const files = objects.filter((o) => !o.key.endsWith('/') && path.posix.basename(o.key) !== '.bzEmpty');
    if (files.length === 0) {
      throw new ModelSyncError(`model sync: MODEL_SYNC_SOURCES names '${source}' but the bucket has nothing under '${listPrefix}'`);
    }
    for (const o of files) {
      const rel = `${source}/${o.key.slice(listPrefix.length)}`;
      if (rel.split('/').some((s) => s === '' || s === '.' || s === '..')) {
        throw new ModelSyncError(`model sync: object '${o.key}' does not map to a path inside MODEL_DIR`);
      }
      remote.push({ ...o, rel });
    }
  }

  const toFetch: Remote[] = [];
  const unchanged: string[] = [];
  let adopted = false;
  for (const item of remote) {
    const verdict = await compare(item, manifest, modelDir);
    if (verdict === 'fetch') {
      toFetch.push(item);
    } else {
      unchanged.push(item.rel);
      adopted ||= verdict === 'adopted';
    }
  }
  if (adopted) await writeManifest(modelDir, manifest);
  const toFetchBytes = toFetch.reduce((n, f) => n + f.size, 0);
  log(
    `model sync: ${remote.length} files under ${sources.map((s) => `'${s}'`).join(', ')}${prefix ? ` (bucket folder '${prefix}/')` : ''}: ` +
      `${toFetch.length} to fetch (${mb(toFetchBytes)}), ${unchanged.length} unchanged`,
  );

  const downloaded: string[] = [];
  let bytesDownloaded = 0;
  for (const item of toFetch) {
    const t0 = Date.now();
    const target = path.join(modelDir, ...item.rel.split('/'));
    const got = await attempt(options, `downloading '${item.key}'`, () => storage.getFile(item.key, target, signal ? { signal } : {}));
    const sha1 = got.sha1 ?? (await hashFile(target)).sha1;
    // The manifest is written after every file, so an interrupted sync resumes where it stopped.
    manifest.files[item.rel] = { size: got.size, sha1, ...(item.checksum !== undefined ? { checksum: item.checksum } : {}) };
    await writeManifest(modelDir, manifest);
    downloaded.push(item.rel);
    bytesDownloaded += got.size;
    log(`model sync: fetched ${item.rel} (${mb(got.size)}) in ${seconds(Date.now() - t0)}`);
  }
  log(`model sync: downloaded ${downloaded.length} files / ${mb(bytesDownloaded)}, ${unchanged.length} unchanged, in ${seconds(Date.now() - started)}`);
  return { downloaded, unchanged, bytesDownloaded };
}

/**
 * 'same' when the manifest says the local file came from this very remote version and it still has that
 * size; 'adopted' for a file not in the manifest (copied by hand) whose content provably matches; else 'fetch'.
 */
async function compare(item: Remote, manifest: Manifest, modelDir: string): Promise<'same' | 'adopted' | 'fetch'> {
  const local = path.join(modelDir, ...item.rel.split('/'));
  const st = await stat(local).catch(() => undefined);
  if (!st?.isFile() || st.size !== item.size) return 'fetch';
  const entry = manifest.files[item.rel];
  if (entry) return entry.size === item.size && entry.checksum === item.checksum ? 'same' : 'fetch';
  const { sha1 } = await hashFile(local);
  // Without a SHA-1 from the store (S3), the size is all there is to compare.
  if (item.sha1 !== undefined && item.sha1 !== sha1) return 'fetch';
  manifest.files[item.rel] = { size: st.size, sha1, ...(item.checksum !== undefined ? { checksum: item.checksum } : {}) };
  return 'adopted';
}

/** Runs a storage call, retrying transient failures a couple of times; anything else fails the sync at once. */
async function attempt<T>(options: ModelSyncOptions, what: string, call: () => Promise<T>): Promise<T> {
  const retries = options.retries ?? 2;
  let delay = options.retryDelayMs ?? 1000;
  for (let n = 0; ; n++) {
    if (options.signal?.aborted) throw new ModelSyncError(`model sync: aborted while ${what}`);
    try {
      return await call();
    } catch (err) {
      if (options.signal?.aborted) throw new ModelSyncError(`model sync: aborted while ${what}`);
      const message = err instanceof StorageError ? err.message : errorText(err);
      if (!(err instanceof StorageError && err.transient) || n >= retries) {
        throw new ModelSyncError(`model sync: ${what} failed: ${message}`);
      }
      options.log(`model sync: ${what} failed (${message}); trying again in ${seconds(delay)}`);
      await sleep(delay, options.signal);
      delay *= 2;
    }
  }
}

async function readManifest(modelDir: string, log: (line: string) => void): Promise<Manifest> {
  let text: string;
  try {
    text = await readFile(path.join(modelDir, MANIFEST_FILE), 'utf8');
  } catch {
    return { version: 1, files: {} };
  }
  try {
    const parsed = JSON.parse(text) as Partial<Manifest>;
    if (parsed.version === 1 && parsed.files && typeof parsed.files === 'object') return { version: 1, files: parsed.files };
  } catch {
    // handled below
  }
  log(`model sync: ${MANIFEST_FILE} is unreadable; every file will be checked against the bucket again`);
  return { version: 1, files: {} };
}

/** Temp file and rename: a crash leaves the old manifest or the new one, never half of one. */
async function writeManifest(modelDir: string, manifest: Manifest): Promise<void> {
  const target = path.join(modelDir, MANIFEST_FILE);
  const temp = tempPathFor(target);
  try {
    await writeFile(temp, JSON.stringify(manifest, null, 1) + '\n');
    await rename(temp, target);
  } catch (err) {
    await rm(temp, { force: true });
    throw new ModelSyncError(`model sync: cannot write ${target}: ${errorText(err)}`);
  }
}

/** Trims slashes and refuses `.`/`..` segments, which could reach outside MODEL_DIR or the bucket folder. */
function cleanPath(value: string, name: string, mayBeEmpty: boolean): string {
  const segments = value.split('/').filter((s) => s !== '');
  if (segments.some((s) => s === '.' || s === '..') || (!mayBeEmpty && segments.length === 0)) {
    throw new ModelSyncError(`model sync: ${name} has an unusable entry '${value}'`);
  }
  return segments.join('/');
}

function mb(bytes: number): string {
  return `${(bytes / 1e6).toFixed(1)} MB`;
}

function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(1)}s`;
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    signal?.addEventListener('abort', done, { once: true });
    function done(): void {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    }
  });
}
