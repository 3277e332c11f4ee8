import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { AddressPolicy } from '@avatar-fleet/contracts';
import { loadWorkerConfig, WorkerConfigError } from '../src/config/worker.config';
import { MediaError } from '../src/media/ffmpeg-process';
import { fetchMedia } from '../src/media/fetch-media';
import { createStorage } from '../src/storage/create-storage';

describe('which addresses job URLs may reach', () => {
  const strict = new AddressPolicy();

  test('public addresses pass; loopback, private, link-local, CGNAT, metadata and their IPv6 forms do not', () => {
    for (const ok of ['8.8.8.8', '1.1.1.1', '151.101.1.69', '2606:4700:4700::1111', '2a00:1450:4001::1']) assert.ok(strict.permits(ok), ok);
    const refused = [
      '127.0.0.1', '127.255.255.254', '0.0.0.0', '10.1.2.3', '172.16.0.1', '172.31.255.255', '192.168.1.1', '169.254.169.254', '100.64.0.1',
      '198.18.0.1', '224.0.0.1', '255.255.255.255', '::', '::1', 'fd00:ec2::254', 'fc00::1', 'fe80::1', 'ff02::1',
      '::ffff:127.0.0.1', '::ffff:169.254.169.254', '::ffff:a9fe:a9fe', '64:ff9b::a9fe:a9fe', '2002:7f00:1::1', 'not-an-address',
    ];
    for (const bad of refused) assert.equal(strict.permits(bad), false, bad);
  });

  test('an allowlist of addresses and CIDR ranges opens exactly those', () => {
    const policy = new AddressPolicy(['127.0.0.1', '10.0.0.0/8', 'fd00::/16']);
    for (const ok of ['127.0.0.1', '10.200.0.1', 'fd00::5', '::ffff:127.0.0.1', '8.8.8.8']) assert.ok(policy.permits(ok), ok);
    for (const bad of ['127.0.0.2', '172.16.0.1', '169.254.169.254', 'fd01::5', '::1']) assert.equal(policy.permits(bad), false, bad);
    for (const entry of ['localhost', '10.0.0.0/33', '10.0.0.0/x', '1.2.3', 'fd00::/129', '']) assert.throws(() => new AddressPolicy([entry]), RangeError, entry);
  });

  test('MEDIA_FETCH_ALLOW is read as that list, and a bad one is a configuration error without its value', () => {
    const env = { ORCHESTRATOR_BASE_URL: 'http://127.0.0.1:1', INTERNAL_API_KEY: 'k' };
    assert.deepEqual(loadWorkerConfig(env).mediaFetchAllow, []);
    assert.deepEqual(loadWorkerConfig({ ...env, MEDIA_FETCH_ALLOW: '127.0.0.1, 10.0.0.0/8' }).mediaFetchAllow, ['127.0.0.1', '10.0.0.0/8']);
    assert.throws(() => loadWorkerConfig({ ...env, MEDIA_FETCH_ALLOW: '127.0.0.1,intranet.example' }), (error: unknown) => {
      assert.ok(error instanceof WorkerConfigError);
      assert.match(error.message, /MEDIA_FETCH_ALLOW must be a comma-separated list of IP addresses or CIDR ranges/);
      assert.doesNotMatch(error.message, /intranet/);
      return true;
    });
  });
});

describe('fetching media through the guard', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'guard-'));
  const storage = createStorage({ driver: 'local', local: { root: path.join(dir, 'bucket') } });
  let port = 0;
  let connections = 0;
  const server = http.createServer((req, res) => {
    if (req.url === '/clip.mp4') return res.end('x'.repeat(100));
    if (req.url === '/to-metadata') return res.writeHead(302, { location: 'http://169.254.169.254/latest/meta-data/' }).end();
    if (req.url === '/to-loopback-v6') return res.writeHead(302, { location: `http://[::1]:${port}/clip.mp4` }).end();
    if (req.url === '/to-self') return res.writeHead(302, { location: `http://127.0.0.1:${port}/clip.mp4` }).end();
    res.writeHead(404).end();
  });
  server.on('connection', () => connections++);
  before(() => new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => { port = (server.address() as { port: number }).port; resolve(); })));
  after(() => {
    server.closeAllConnections();
    server.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const forbidden = (address: RegExp) => (error: unknown) => {
    assert.ok(error instanceof MediaError, String(error));
    assert.equal(error.code, 'media_forbidden');
    assert.equal(error.retryable, false, 'the URL stays refused');
    assert.match(error.message, address);
    assert.match(error.message, /MEDIA_FETCH_ALLOW/);
    return true;
  };

  test('literal loopback addresses, in every spelling, are refused before any connection', async () => {
    const access = new AddressPolicy();
    const before = connections;
    const urls = [
      `http://127.0.0.1:${port}/clip.mp4`, `http://[::ffff:127.0.0.1]:${port}/clip.mp4`, `http://[::ffff:7f00:1]:${port}/clip.mp4`,
      `http://0x7f000001:${port}/clip.mp4`, `http://2130706433:${port}/clip.mp4`, `http://0177.0.0.1:${port}/clip.mp4`,
      `http://[::1]:${port}/clip.mp4`, `https://127.0.0.1:${port}/clip.mp4`, `http://169.254.169.254/latest/meta-data/`, 'http://[fd00:ec2::254]/latest/meta-data/',
    ];
    for (const url of urls) await assert.rejects(fetchMedia(url, 'a', { storage, scratchDir: dir, access }), forbidden(/private, loopback or link-local/), url);
    assert.equal(connections, before, 'the server saw no connection');
  });

  test('a name that resolves to loopback is refused after DNS resolution', async () => {
    const before = connections;
    await assert.rejects(fetchMedia(`http://localhost:${port}/clip.mp4`, 'b', { storage, scratchDir: dir, access: new AddressPolicy() }), forbidden(/localhost resolves to (127\.0\.0\.1|::1)/));
    assert.equal(connections, before);
  });

  test('every redirect is checked: an allowed host cannot send the fetch on to metadata or loopback', async () => {
    const access = new AddressPolicy(['127.0.0.1']);
    await assert.rejects(fetchMedia(`http://127.0.0.1:${port}/to-metadata`, 'c', { storage, scratchDir: dir, access }), forbidden(/169\.254\.169\.254/));
    await assert.rejects(fetchMedia(`http://127.0.0.1:${port}/to-loopback-v6`, 'd', { storage, scratchDir: dir, access }), forbidden(/::1/));
    // The same redirect to an allowed address is followed.
    assert.equal(readFileSync(await fetchMedia(`http://127.0.0.1:${port}/to-self`, 'e', { storage, scratchDir: dir, access }), 'utf8').length, 100);
  });

  test('an allowed address is fetched as before', async () => {
    const file = await fetchMedia(`http://127.0.0.1:${port}/clip.mp4`, 'f', { storage, scratchDir: dir, access: new AddressPolicy(['127.0.0.0/8']) });
    assert.equal(readFileSync(file, 'utf8').length, 100);
  });
});
