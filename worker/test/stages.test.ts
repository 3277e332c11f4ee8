import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { AddressPolicy } from '@avatar-fleet/contracts';
import { MediaError } from '../src/media/ffmpeg';
import { fetchMedia } from '../src/media/fetch-media';
import { BoundedQueue, runStages } from '../src/pipelines/shared/bounded-queue';
import { createStorage } from '../src/storage/create-storage';

describe('bounded queue between stages', () => {
  test('the producer never gets more than `capacity` items ahead; order is kept', async () => {
    const q = new BoundedQueue<number>(3);
    let maxAhead = 0;
    const seen: number[] = [];
    await runStages([q], [
      async () => {
        for (let i = 0; i < 50; i++) {
          await q.push(i);
          maxAhead = Math.max(maxAhead, q.size);
        }
        q.close();
      },
      async () => {
        for await (const item of q) {
          seen.push(item);
          if (item % 7 === 0) await new Promise((r) => setTimeout(r, 1));
        }
      },
    ]);
    assert.deepEqual(seen, Array.from({ length: 50 }, (_, i) => i));
    assert.ok(maxAhead <= 3, `producer was ${maxAhead} ahead`);
  });

  test('a failing stage fails the others instead of leaving them waiting', async () => {
    const a = new BoundedQueue<number>(1);
    const b = new BoundedQueue<number>(1);
    await assert.rejects(runStages([a, b], [
      async () => { for (let i = 0; ; i++) await a.push(i); },
      async () => { for await (const x of a) if (x === 3) throw new Error('inference failed'); else await b.push(x); },
      async () => { for await (const _ of b) { /* the encoder */ } },
    ]), /inference failed/);
  });
});

describe('fetching a job\'s media into the scratch folder', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'fetch-'));
  let base = '';
  const server = http.createServer((req, res) => {
    if (req.url === '/clip.mp4') return res.end('x'.repeat(1000));
    if (req.url === '/busy') return res.writeHead(503).end();
    res.writeHead(404).end();
  });
  before(() => new Promise<void>((r) => server.listen(0, '127.0.0.1', () => { base = `http://127.0.0.1:${(server.address() as { port: number }).port}`; r(); })));
  after(() => { server.closeAllConnections(); server.close(); });
  const storageRoot = path.join(dir, 'bucket');
  // The test server is on loopback, which job URLs may reach only when allowed (address-guard.test.ts).
  const options = { storage: createStorage({ driver: 'local', local: { root: storageRoot } }), scratchDir: dir, access: new AddressPolicy(['127.0.0.1']) };

  test('http(s) URLs and storage keys both arrive as local files', async () => {
    assert.equal(readFileSync(await fetchMedia(`${base}/clip.mp4`, 'a.mp4', options), 'utf8').length, 1000);
    mkdirSync(path.join(storageRoot, 'uploads'), { recursive: true });
    writeFileSync(path.join(storageRoot, 'uploads/voice.wav'), 'RIFF');
    assert.equal(readFileSync(await fetchMedia('uploads/voice.wav', 'b.wav', options), 'utf8'), 'RIFF');
  });

  test('a wrong URL or key is not retryable; a busy or unreachable server is; a too-big source is refused', async () => {
    const check = (code: string, retryable: boolean) => (e: unknown) => e instanceof MediaError && e.code === code && e.retryable === retryable;
    await assert.rejects(fetchMedia(`${base}/missing.mp4`, 'c', options), check('media_unreadable', false));
    await assert.rejects(fetchMedia('uploads/missing.wav', 'd', options), (e: unknown) => e instanceof MediaError && e.code === 'media_unreadable');
    await assert.rejects(fetchMedia(`${base}/busy`, 'e', options), check('media_unreadable', true));
    await assert.rejects(fetchMedia('http://127.0.0.1:9/x.mp4', 'f', options), check('media_unreadable', true));
    await assert.rejects(fetchMedia(`${base}/clip.mp4`, 'g', { ...options, maxBytes: 100 }), (e: unknown) => e instanceof MediaError && e.code === 'media_too_long');
  });
});
