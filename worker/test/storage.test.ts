import { GetObjectCommand, S3Client } from '@aws-sdk/client-s3';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { createStorage } from '../src/storage/create-storage';
import { attemptKey, StorageError, type ObjectStorage } from '../src/storage/storage';
import { FakeB2Server } from './helpers/fake-b2-server';
import { tempDir } from './helpers/temp-dir';
import { startS3Server, type S3TestServer } from './helpers/s3-server';

const MiB = 1024 * 1024;
const sha1 = (b: Buffer): string => createHash('sha1').update(b).digest('hex');

const work = tempDir('storage-test-');

let seq = 0;
/** A file of random bytes in the test's temp folder. */
async function makeFile(size: number): Promise<{ file: string; bytes: Buffer }> {
  const bytes = randomBytes(size);
  const file = path.join(work, `in-${++seq}.bin`);
  await writeFile(file, bytes);
  return { file, bytes };
}

function outPath(...parts: string[]): string {
  return path.join(work, `out-${++seq}`, ...parts);
}

/** Leftover temp files (ours end in .partial) anywhere under a folder. */
async function leftovers(dir: string): Promise<string[]> {
  if (!existsSync(dir)) return [];
  const names = await readdir(dir, { recursive: true });
  return names.filter((n) => n.endsWith('.partial'));
}

async function rejectsWith(promise: Promise<unknown>, check: (err: StorageError) => void): Promise<StorageError> {
  try {
    await promise;
  } catch (err) {
    assert.ok(err instanceof StorageError, `expected a StorageError, got ${String(err)}`);
    check(err);
    return err;
  }
  assert.fail('expected a rejection');
}

interface Harness {
  storage: ObjectStorage;
  url(key: string): string;
  wrongBucket(): ObjectStorage;
  /** A store with wrong credentials, and the strings that must never show in an error. */
  wrongCredentials?(): { storage: ObjectStorage; secrets: string[] };
  stop(): Promise<void>;
}

const harnesses: Record<'local' | 's3' | 'b2', () => Promise<Harness>> = {
  async local() {
    const root = path.join(work, 'local-bucket');
    const aFile = path.join(work, 'no-such-bucket');
    await writeFile(aFile, 'a regular file');
    return {
      storage: createStorage({ driver: 'local', local: { root } }),
      url: (key) => `file://${path.join(root, key)}`,
      // A root under a regular file can never be created.
      wrongBucket: () => createStorage({ driver: 'local', local: { root: path.join(aFile, 'root') } }),
      stop: async () => undefined,
    };
  },
  async s3() {
    const s3 = await startS3Server();
    const settings = { bucket: s3.bucket, endpoint: s3.endpoint, region: s3.region, accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey };
    return {
      storage: createStorage({ driver: 's3', s3: settings }, { s3: { listPageSize: 3 } }),
      url: (key) => `s3://${s3.bucket}/${key}`,
      wrongBucket: () => createStorage({ driver: 's3', s3: { ...settings, bucket: 'no-such-bucket' } }),
      wrongCredentials: () => ({
        storage: createStorage({ driver: 's3', s3: { ...settings, accessKeyId: 'WRONGKEYID123', secretAccessKey: 'wrong-secret-value-xyz' } }),
        secrets: ['WRONGKEYID123', 'wrong-secret-value-xyz'],
      }),
      stop: () => s3.stop(),
    };
  },
  async b2() {
    const fake = await FakeB2Server.start();
    const settings = { keyId: fake.keyId, appKey: fake.appKey, bucket: fake.bucketName, authUrl: fake.authUrl };
    return {
      storage: createStorage({ driver: 'b2', b2: settings }, { b2: { listPageSize: 3 } }),
      url: (key) => `b2://${fake.bucketName}/${key}`,
      wrongBucket: () => createStorage({ driver: 'b2', b2: { ...settings, bucket: 'no-such-bucket' } }),
      wrongCredentials: () => ({
        storage: createStorage({ driver: 'b2', b2: { ...settings, appKey: 'K001WrongSecretAppKey999' } }),
        secrets: [fake.keyId, 'K001WrongSecretAppKey999', Buffer.from(`${fake.keyId}:K001WrongSecretAppKey999`).toString('base64')],
      }),
      stop: () => fake.stop(),
    };
  },
};

for (const [name, make] of Object.entries(harnesses)) {
  describe(`${name} driver: the ObjectStorage contract`, () => {
    let h: Harness;
    before(async () => {
      h = await make();
    });
    after(() => h.stop());

    test('putFile then getFile round-trips the bytes exactly, into folders that did not exist', async () => {
      const { file, bytes } = await makeFile(300_001);
      const stored = await h.storage.putFile('contract-a/a.bin', file, { contentType: 'application/octet-stream' });
      assert.deepEqual(stored, { key: 'contract-a/a.bin', size: bytes.length, sha1: sha1(bytes), url: h.url('contract-a/a.bin') });
      const target = outPath('deep', 'er', 'a.bin');
      const info = await h.storage.getFile('contract-a/a.bin', target);
      assert.equal(info.size, bytes.length);
      assert.equal(sha1(await readFile(target)), sha1(bytes));
      assert.deepEqual(await leftovers(path.dirname(target)), []);
    });

    test('an empty file round-trips too', async () => {
      const { file } = await makeFile(0);
      const stored = await h.storage.putFile('contract-a/empty.bin', file);
      assert.equal(stored.size, 0);
      const target = outPath('empty.bin');
      await h.storage.getFile('contract-a/empty.bin', target);
      assert.equal((await readFile(target)).length, 0);
    });

    test('keys with spaces, plus signs and non-ASCII letters round-trip and list as written', async () => {
      const key = 'contract-b/Zoë voice+1 (final).wav';
      const { file, bytes } = await makeFile(4321);
      await h.storage.putFile(key, file);
      assert.deepEqual((await h.storage.list('contract-b/')).map((o) => o.key), [key]);
      const target = outPath('voice.wav');
      await h.storage.getFile(key, target);
      assert.equal(sha1(await readFile(target)), sha1(bytes));
    });

    test('list follows pagination (pages of 3) and keeps to the prefix', async () => {
      const expected: { key: string; size: number }[] = [];
      for (let i = 0; i < 7; i++) {
        const { file } = await makeFile(100 + i);
        const key = `paged/item-${i}.bin`;
        await h.storage.putFile(key, file);
        expected.push({ key, size: 100 + i });
      }
      for (const key of ['pagedx/not-me.bin', 'other/not-me.bin']) await h.storage.putFile(key, (await makeFile(5)).file);
      const listed = await h.storage.list('paged/');
      assert.deepEqual(listed.map((o) => ({ key: o.key, size: o.size })), expected);
      for (const o of listed) assert.ok(o.checksum, `${o.key} has a checksum`);
      assert.deepEqual(await h.storage.list('nothing-here/'), []);
    });

    test('attempt keys keep two attempts of one job apart', async () => {
      const one = await makeFile(1000);
      const two = await makeFile(2000);
      const k1 = attemptKey('job-42', 1, 'out/video.mp4');
      const k2 = attemptKey('job-42', 2, 'out/video.mp4');
      assert.equal(k1, 'jobs/job-42/attempt-1/out/video.mp4');
      await h.storage.putFile(k1, one.file);
      await h.storage.putFile(k2, two.file);
      const listed = await h.storage.list('jobs/job-42/');
      assert.deepEqual(listed.map((o) => [o.key, o.size]), [[k1, 1000], [k2, 2000]]);
      const target = outPath('video.mp4');
      await h.storage.getFile(k1, target);
      assert.equal(sha1(await readFile(target)), sha1(one.bytes));
      assert.throws(() => attemptKey('job-42', 1, '../escape'), StorageError);
    });

    test('uploading a file that does not exist is a StorageError, not a crash', async () => {
      await rejectsWith(h.storage.putFile('contract-a/ghost.bin', path.join(work, 'no-such-file.bin')), (err) => {
        assert.match(err.message, /ENOENT/);
        assert.equal(err.transient, false);
      });
      assert.deepEqual(await h.storage.list('contract-a/ghost'), []);
    });

    test('a missing key is a StorageError naming it, and leaves no file behind', async () => {
      const target = outPath('missing.bin');
      await rejectsWith(h.storage.getFile('contract-a/missing.bin', target), (err) => {
        assert.match(err.message, /contract-a\/missing\.bin/);
        assert.equal(err.transient, false);
      });
      assert.equal(existsSync(target), false);
      assert.deepEqual(await leftovers(path.dirname(target)), []);
    });

    test('check() passes, and fails clearly for a bucket that cannot be used', async () => {
      await h.storage.check();
      await rejectsWith(h.wrongBucket().check(), (err) => {
        assert.match(err.message, /no-such-bucket/);
        assert.equal(err.transient, false);
      });
    });

    test('wrong credentials fail check() with a message that holds no secret', { skip: name === 'local' }, async () => {
      const { storage, secrets } = h.wrongCredentials!();
      const err = await rejectsWith(storage.check(), (e) => assert.equal(e.transient, false));
      assert.match(err.message, /40[13]/);
      for (const secret of secrets) assert.ok(!err.message.includes(secret), `message leaks a secret: ${err.message}`);
      assert.equal(err.cause, undefined);
    });

    test('an aborted signal rejects uploads and downloads and leaves nothing behind', async () => {
      const { file } = await makeFile(50_000);
      await h.storage.putFile('contract-a/abort.bin', file);
      const target = outPath('abort.bin');
      await rejectsWith(h.storage.getFile('contract-a/abort.bin', target, { signal: AbortSignal.abort() }), (err) => assert.match(err.message, /abort/));
      assert.equal(existsSync(target), false);
      await rejectsWith(h.storage.putFile('contract-a/abort-up.bin', file, { signal: AbortSignal.abort() }), (err) => assert.match(err.message, /abort/));
      assert.deepEqual((await h.storage.list('contract-a/abort-up')).length, 0);
    });
  });
}

describe('b2 driver against the fake B2 server', () => {
  let fake: FakeB2Server;
  let storage: ObjectStorage;
  before(async () => {
    fake = await FakeB2Server.start();
    storage = createStorage({
      driver: 'b2',
      b2: { keyId: fake.keyId, appKey: fake.appKey, bucket: fake.bucketName, authUrl: fake.url, largeFileThresholdBytes: 6 * MiB, partSizeBytes: 5 * MiB },
    });
  });
  after(() => fake.stop());

  test('a file above the threshold goes up in parts, each request at most one part, and comes back whole', async () => {
    const { file, bytes } = await makeFile(12 * MiB + 123);
    fake.largestBody = 0;
    const stored = await storage.putFile('large/model.bin', file);
    assert.equal(stored.sha1, sha1(bytes));
    assert.equal(fake.count('start_large_file'), 1);
    assert.equal(fake.count('upload_part'), 3);
    assert.equal(fake.count('finish_large_file'), 1);
    assert.equal(fake.count('upload_file'), 0);
    assert.ok(fake.largestBody <= 5 * MiB, `largest request body ${fake.largestBody} exceeds one part`);
    assert.equal(fake.files.get('large/model.bin')?.fileInfo['large_file_sha1'], sha1(bytes));
    const [listed] = await storage.list('large/');
    assert.deepEqual(listed, { key: 'large/model.bin', size: bytes.length, checksum: sha1(bytes), sha1: sha1(bytes) });
    const target = outPath('model.bin');
    const info = await storage.getFile('large/model.bin', target);
    assert.equal(info.sha1, sha1(bytes));
    assert.equal(sha1(await readFile(target)), sha1(bytes));
  });

  test('a failed part cancels the large file and reports a transient error', async () => {
    const { file } = await makeFile(11 * MiB);
    const cancels = fake.count('cancel_large_file');
    fake.failNext('upload_part', 1);
    await rejectsWith(storage.putFile('large/failed.bin', file), (err) => {
      assert.equal(err.transient, true);
      assert.match(err.message, /503 service_unavailable/);
      assert.match(err.message, /large\/failed\.bin/);
    });
    assert.equal(fake.count('cancel_large_file'), cancels + 1);
    assert.equal(fake.largeFiles.size, 0);
    assert.equal(fake.files.has('large/failed.bin'), false);
  });

  test('a download whose bytes do not match the announced SHA-1 is rejected and leaves no file', async () => {
    const { file } = await makeFile(70_000);
    await storage.putFile('corrupt/a.bin', file);
    fake.corruptNextDownload();
    const target = outPath('corrupt.bin');
    await rejectsWith(storage.getFile('corrupt/a.bin', target), (err) => assert.match(err.message, /SHA-1/));
    assert.equal(existsSync(target), false);
    assert.deepEqual(await leftovers(path.dirname(target)), []);
  });

  test('a download aborted mid-transfer rejects and leaves no file', async () => {
    const { file } = await makeFile(2 * MiB);
    await storage.putFile('stall/a.bin', file);
    const stalled = fake.stallNextDownload();
    const controller = new AbortController();
    const target = outPath('stalled.bin');
    const download = storage.getFile('stall/a.bin', target, { signal: controller.signal });
    await stalled;
    controller.abort();
    await rejectsWith(download, (err) => assert.match(err.message, /aborted/));
    assert.equal(existsSync(target), false);
    assert.deepEqual(await leftovers(path.dirname(target)), []);
  });

  test('an upload aborted between parts rejects, cancels the large file and stores nothing', async () => {
    const { file } = await makeFile(12 * MiB);
    const controller = new AbortController();
    const cancels = fake.count('cancel_large_file');
    const parts = fake.count('upload_part');
    fake.after.set('upload_part', () => controller.abort());
    try {
      await rejectsWith(storage.putFile('large/aborted.bin', file, { signal: controller.signal }), (err) => assert.match(err.message, /aborted/));
    } finally {
      fake.after.delete('upload_part');
    }
    assert.equal(fake.count('upload_part'), parts + 1);
    assert.equal(fake.count('cancel_large_file'), cancels + 1);
    assert.equal(fake.largeFiles.size, 0);
    assert.equal(fake.files.has('large/aborted.bin'), false);
  });

  test('an expired auth token is renewed once and the call succeeds', async () => {
    await storage.list('');
    const before = fake.count('authorize');
    fake.expireAuthTokens();
    await storage.list('large/');
    assert.equal(fake.count('authorize'), before + 1);
    fake.expireAuthTokens();
    const { file } = await makeFile(1234);
    await storage.putFile('renewed/a.bin', file);
    assert.equal(fake.count('authorize'), before + 2);
    assert.equal(fake.files.get('renewed/a.bin')?.buffer.length, 1234);
  });

  test('a token that keeps failing is not renewed in a loop', async () => {
    const before = fake.count('authorize');
    fake.failNext('list_file_names', 2, 401, 'expired_auth_token');
    await rejectsWith(storage.list('large/'), (err) => assert.match(err.message, /401 expired_auth_token/));
    assert.equal(fake.count('authorize'), before + 1);
  });

  test('503 from B2 is a transient StorageError; the next call works', async () => {
    fake.failNext('list_file_names', 1);
    await rejectsWith(storage.list('large/'), (err) => {
      assert.equal(err.transient, true);
      assert.match(err.message, /503/);
    });
    assert.equal((await storage.list('large/')).length, 1);
    fake.failNext('download', 1, 429, 'too_many_requests');
    await rejectsWith(storage.getFile('large/model.bin', outPath('x.bin')), (err) => {
      assert.equal(err.transient, true);
      assert.match(err.message, /429 too_many_requests/);
    });
  });

  test('an unreachable endpoint is a transient StorageError', async () => {
    const gone = await FakeB2Server.start();
    const url = gone.authUrl;
    await gone.stop();
    const s = createStorage({ driver: 'b2', b2: { keyId: fake.keyId, appKey: fake.appKey, bucket: fake.bucketName, authUrl: url } });
    const err = await rejectsWith(s.check(), (e) => assert.equal(e.transient, true));
    assert.match(err.message, /ECONNREFUSED/);
    assert.ok(!err.message.includes(fake.appKey));
  });
});

describe('s3 driver against s3rver', () => {
  let s3: S3TestServer;
  let storage: ObjectStorage;
  let raw: S3Client;
  before(async () => {
    s3 = await startS3Server();
    const settings = { bucket: s3.bucket, endpoint: s3.endpoint, accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey };
    storage = createStorage({ driver: 's3', s3: settings }, { s3: { partSizeBytes: 5 * MiB } });
    raw = new S3Client({ region: s3.region, endpoint: s3.endpoint, forcePathStyle: true, credentials: settings, responseChecksumValidation: 'WHEN_REQUIRED' });
  });
  after(async () => {
    raw.destroy();
    await s3.stop();
  });

  for (const size of [1 * MiB + 7, 11 * MiB + 3]) {
    test(`a streamed upload of ${size} bytes is stored byte-exact (no aws-chunked framing)`, async () => {
      const { file, bytes } = await makeFile(size);
      await storage.putFile(`exact/${size}.bin`, file);
      const res = await raw.send(new GetObjectCommand({ Bucket: s3.bucket, Key: `exact/${size}.bin` }));
      const stored = Buffer.from(await res.Body!.transformToByteArray());
      assert.equal(stored.length, bytes.length);
      assert.equal(sha1(stored), sha1(bytes));
    });
  }
});

describe('local driver', () => {
  test('keys that would escape the root are refused and nothing is written outside it', async () => {
    const root = path.join(work, 'jail', 'root');
    await mkdir(root, { recursive: true });
    const storage = createStorage({ driver: 'local', local: { root } });
    const { file } = await makeFile(10);
    for (const key of ['../escape.bin', 'a/../../escape.bin', '/etc/escape.bin', 'a//b.bin', '..', '']) {
      await rejectsWith(storage.putFile(key, file), (err) => assert.match(err.message, /not a plain relative path/));
    }
    await rejectsWith(storage.getFile('../escape.bin', outPath('x')), (err) => assert.match(err.message, /not a plain relative path/));
    assert.deepEqual(await readdir(path.join(work, 'jail')), ['root']);
    assert.equal(existsSync('/etc/escape.bin'), false);
  });
});
