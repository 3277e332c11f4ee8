import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, test } from 'node:test';
import { createStorage } from '../src/storage/create-storage';
import { ScopedStorage } from '../src/storage/scoped-storage';
import { StorageError } from '../src/storage/storage';

describe('an owner\'s view of the bucket (ScopedStorage over the local driver)', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'scoped-'));
  const bucket = path.join(dir, 'bucket');
  const whole = createStorage({ driver: 'local', local: { root: bucket } });
  const ann = new ScopedStorage(whole, 'tenants/ann/');
  const bob = new ScopedStorage(whole, 'tenants/bob/');
  const source = path.join(dir, 'clip.txt');
  writeFileSync(source, 'ann\'s clip');

  test('keys go under the prefix, come back relative to it, and another owner sees none of them', async () => {
    const stored = await ann.putFile('uploads/clip.txt', source);
    assert.equal(stored.key, 'uploads/clip.txt');
    assert.equal(fileURLToPath(stored.url), path.join(bucket, 'tenants/ann/uploads/clip.txt'), 'url is where the object really is');
    const copy = path.join(dir, 'copy.txt');
    assert.equal((await ann.getFile('uploads/clip.txt', copy)).key, 'uploads/clip.txt');
    assert.equal(readFileSync(copy, 'utf8'), 'ann\'s clip');
    assert.deepEqual((await ann.list('')).map((o) => o.key), ['uploads/clip.txt']);
    assert.deepEqual((await ann.list('uploads/')).map((o) => o.key), ['uploads/clip.txt']);
    assert.deepEqual(await bob.list(''), []);
    await assert.rejects(bob.getFile('uploads/clip.txt', copy), /no such object/);
    assert.deepEqual(readdirSync(bucket), ['tenants']);
  });

  test('a key that could leave the prefix is refused before the driver sees it', async () => {
    const escapes = ['../bob/x.txt', 'a/../../bob/x.txt', '..', '/etc/passwd', './x.txt', 'a/./x.txt', 'a//x.txt', 'a\\..\\x.txt', '', 'x.txt\0'];
    for (const key of escapes) {
      await assert.rejects(ann.putFile(key, source), (e: unknown) => e instanceof StorageError && !e.transient && /leave the owner's namespace/.test(e.message), JSON.stringify(key));
      await assert.rejects(ann.getFile(key, path.join(dir, 'out.txt')), StorageError, JSON.stringify(key));
    }
    for (const prefix of ['../', '../bob/', 'a/../../', '/']) await assert.rejects(ann.list(prefix), StorageError, prefix);
    assert.equal(existsSync(path.join(bucket, 'tenants/bob')), false, 'nothing reached the other owner');
    assert.equal(existsSync(path.join(dir, 'out.txt')), false);
  });

  test('only tenants/<owner>/ is a prefix', () => {
    for (const prefix of ['tenants/../', 'tenants/.ann/', 'tenants/ann', 'tenants/a/b/', 'tenants//', '', 'ann/', '/tenants/ann/']) {
      assert.throws(() => new ScopedStorage(whole, prefix), StorageError, prefix);
    }
  });
});
