import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readFile, unlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { createStorage } from '../src/storage/create-storage';
import { MANIFEST_FILE, ModelSyncError, syncModels, type ModelSyncOptions } from '../src/storage/model-sync';
import type { ObjectStorage } from '../src/storage/storage';
import { FakeB2Server } from './helpers/fake-b2-server';
import { tempDir } from './helpers/temp-dir';

const sha1 = (b: Buffer): string => createHash('sha1').update(b).digest('hex');

const work = tempDir('model-sync-test-');

let seq = 0;
const freshDir = (): string => path.join(work, `models-${++seq}`);

async function rejectsSync(promise: Promise<unknown>): Promise<ModelSyncError> {
  try {
    await promise;
  } catch (err) {
    assert.ok(err instanceof ModelSyncError, `expected a ModelSyncError, got ${String(err)}`);
    return err;
  }
  assert.fail('expected the sync to fail');
}

describe('model sync from B2 (real backblaze-b2 client, fake B2 server)', () => {
  let fake: FakeB2Server;
  let storage: ObjectStorage;
  const logs: string[] = [];
  /** What the bucket holds under the two sources, by MODEL_DIR-relative path. */
  const remote = new Map<string, Buffer>();
  let modelDir: string;

  const options = (dir: string, extra: Partial<ModelSyncOptions> = {}): ModelSyncOptions => ({
    storage, prefix: '/models/', sources: ['wav2lip', 'face/'], modelDir: dir, log: (l) => logs.push(l), retryDelayMs: 1, ...extra,
  });
  const totalDownloads = (): number => [...fake.downloadsByKey.values()].reduce((a, b) => a + b, 0);
  const seed = (rel: string, bytes: Buffer): void => {
    remote.set(rel, bytes);
    fake.put(`models/${rel}`, bytes);
  };

  before(async () => {
    modelDir = freshDir();
    fake = await FakeB2Server.start();
    storage = createStorage({ driver: 'b2', b2: { keyId: fake.keyId, appKey: fake.appKey, bucket: fake.bucketName, authUrl: fake.authUrl } }, { b2: { listPageSize: 2 } });
    seed('wav2lip/wav2lip.onnx', randomBytes(200_000));
    seed('wav2lip/sub/config.json', Buffer.from('{"fps":25}'));
    seed('face/detector.onnx', randomBytes(50_000));
    seed('face/landmarks.onnx', randomBytes(30_000));
    fake.put('models/other/unrelated.bin', 'not a source');
    fake.put('models/wav2lipx/decoy.bin', 'shares a name prefix with a source');
  });
  after(async () => {
    await fake.stop();
    const all = logs.join('\n');
    for (const secret of [fake.keyId, fake.appKey]) assert.ok(!all.includes(secret), 'a log line holds a credential');
  });

  test('the first sync downloads every file of the sources, and nothing else', async () => {
    logs.length = 0;
    const report = await syncModels(options(modelDir));
    assert.deepEqual([...report.downloaded].sort(), [...remote.keys()].sort());
    assert.deepEqual(report.unchanged, []);
    assert.equal(report.bytesDownloaded, [...remote.values()].reduce((n, b) => n + b.length, 0));
    for (const [rel, bytes] of remote) assert.equal(sha1(await readFile(path.join(modelDir, rel))), sha1(bytes), rel);
    assert.equal(existsSync(path.join(modelDir, 'other')), false);
    assert.equal(existsSync(path.join(modelDir, 'wav2lipx')), false);
    const manifest = JSON.parse(await readFile(path.join(modelDir, MANIFEST_FILE), 'utf8')) as { files: Record<string, unknown> };
    assert.deepEqual(Object.keys(manifest.files).sort(), [...remote.keys()].sort());
    assert.match(logs[0] ?? '', /4 files under 'wav2lip', 'face'.*4 to fetch \(0\.3 MB\), 0 unchanged/);
    assert.equal(logs.filter((l) => /fetched \S+ \(\d+\.\d MB\)/.test(l)).length, 4);
    assert.match(logs.at(-1) ?? '', /downloaded 4 files \/ 0\.3 MB, 0 unchanged, in \d+\.\ds/);
  });

  test('a second sync downloads nothing', async () => {
    const before = totalDownloads();
    const report = await syncModels(options(modelDir));
    assert.deepEqual(report.downloaded, []);
    assert.equal(report.unchanged.length, 4);
    assert.equal(report.bytesDownloaded, 0);
    assert.equal(totalDownloads(), before);
  });

  test('a remote file that changed (same size) is the only one downloaded', async () => {
    const changed = randomBytes(50_000);
    seed('face/detector.onnx', changed);
    const report = await syncModels(options(modelDir));
    assert.deepEqual(report.downloaded, ['face/detector.onnx']);
    assert.equal(report.unchanged.length, 3);
    assert.equal(sha1(await readFile(path.join(modelDir, 'face/detector.onnx'))), sha1(changed));
  });

  test('a local file that went missing is the only one downloaded again', async () => {
    await unlink(path.join(modelDir, 'wav2lip/sub/config.json'));
    const before = fake.downloadsByKey.get('models/wav2lip/wav2lip.onnx');
    const report = await syncModels(options(modelDir));
    assert.deepEqual(report.downloaded, ['wav2lip/sub/config.json']);
    assert.equal(await readFile(path.join(modelDir, 'wav2lip/sub/config.json'), 'utf8'), '{"fps":25}');
    assert.equal(fake.downloadsByKey.get('models/wav2lip/wav2lip.onnx'), before);
  });

  test('files copied by hand count as unchanged only when their SHA-1 matches', async () => {
    const dir = freshDir();
    for (const [rel, bytes] of remote) {
      await mkdir(path.dirname(path.join(dir, rel)), { recursive: true });
      await writeFile(path.join(dir, rel), bytes);
    }
    // Same size, other bytes: the size alone must not pass it.
    await writeFile(path.join(dir, 'face/landmarks.onnx'), randomBytes(30_000));
    const report = await syncModels(options(dir));
    assert.deepEqual(report.downloaded, ['face/landmarks.onnx']);
    assert.equal(report.unchanged.length, 3);
    assert.equal(sha1(await readFile(path.join(dir, 'face/landmarks.onnx'))), sha1(remote.get('face/landmarks.onnx')!));
    assert.deepEqual((await syncModels(options(dir))).downloaded, []);
  });

  test('an interrupted sync resumes: files already fetched are not fetched again', async () => {
    const dir = freshDir();
    fake.failNext('download', 1, 400, 'bad_request', 1);
    const err = await rejectsSync(syncModels(options(dir)));
    assert.match(err.message, /downloading 'models\/.+' failed: b2 getFile .*400 bad_request/);
    const manifest = JSON.parse(await readFile(path.join(dir, MANIFEST_FILE), 'utf8')) as { files: Record<string, unknown> };
    const first = Object.keys(manifest.files);
    assert.equal(first.length, 1);
    const report = await syncModels(options(dir));
    assert.equal(report.downloaded.length, 3);
    assert.ok(!report.downloaded.includes(first[0]!));
    assert.deepEqual(report.unchanged, first);
  });

  test('a transient failure is retried briefly and the sync completes', async () => {
    const dir = freshDir();
    logs.length = 0;
    fake.failNext('download', 1, 503, 'service_unavailable');
    const report = await syncModels(options(dir));
    assert.equal(report.downloaded.length, 4);
    assert.equal(logs.filter((l) => /503 service_unavailable.*\); trying again/.test(l)).length, 1);
  });

  test('a source with nothing in the bucket fails, naming it and the folder looked in', async () => {
    const err = await rejectsSync(syncModels(options(freshDir(), { sources: ['wav2lip', 'musetalk'] })));
    assert.equal(err.message, "model sync: MODEL_SYNC_SOURCES names 'musetalk' but the bucket has nothing under 'models/musetalk/'");
  });

  test('wrong credentials fail at once, without retrying and without the secret in the message', async () => {
    const authorizations = fake.count('authorize');
    const wrongKey = 'K001ThisIsTheWrongSecret77';
    const bad = createStorage({ driver: 'b2', b2: { keyId: fake.keyId, appKey: wrongKey, bucket: fake.bucketName, authUrl: fake.authUrl } });
    const err = await rejectsSync(syncModels(options(freshDir(), { storage: bad, retryDelayMs: 60_000 })));
    assert.match(err.message, /401 unauthorized/);
    for (const secret of [wrongKey, fake.keyId]) assert.ok(!err.message.includes(secret), err.message);
    assert.equal(fake.count('authorize'), authorizations + 1);
  });

  test('an unreachable store fails after a short, bounded retry, without the secret in the message', async () => {
    const gone = await FakeB2Server.start();
    await gone.stop();
    const bad = createStorage({ driver: 'b2', b2: { keyId: fake.keyId, appKey: fake.appKey, bucket: 'models', authUrl: gone.url } });
    logs.length = 0;
    const err = await rejectsSync(syncModels(options(freshDir(), { storage: bad })));
    assert.match(err.message, /listing 'models\/wav2lip\/' failed: b2 authorize .*ECONNREFUSED/);
    assert.ok(!err.message.includes(fake.appKey));
    assert.equal(logs.filter((l) => /trying again/.test(l)).length, 2);
  });
});

describe('model sync with the local driver as the bucket', () => {
  test('an empty prefix works, and a source that climbs out is refused', async () => {
    const bucket = path.join(work, 'bucket');
    await mkdir(path.join(bucket, 'tts', 'voices'), { recursive: true });
    await writeFile(path.join(bucket, 'tts', 'voices', 'en.bin'), randomBytes(1000));
    const storage = createStorage({ driver: 'local', local: { root: bucket } });
    const dir = freshDir();
    const log = (): void => undefined;
    const first = await syncModels({ storage, prefix: '', sources: ['tts'], modelDir: dir, log });
    assert.deepEqual(first.downloaded, ['tts/voices/en.bin']);
    assert.deepEqual((await syncModels({ storage, prefix: '', sources: ['tts'], modelDir: dir, log })).downloaded, []);
    await writeFile(path.join(bucket, 'tts', 'voices', 'en.bin'), randomBytes(1000));
    assert.deepEqual((await syncModels({ storage, prefix: '', sources: ['tts'], modelDir: dir, log })).downloaded, ['tts/voices/en.bin']);
    const err = await rejectsSync(syncModels({ storage, prefix: '', sources: ['../etc'], modelDir: dir, log }));
    assert.match(err.message, /MODEL_SYNC_SOURCES has an unusable entry '\.\.\/etc'/);
  });
});
