import assert from 'node:assert/strict';
import http from 'node:http';
import { after, before, describe, test } from 'node:test';
import type { HeartbeatRequest, HeartbeatResponse, HeldLease } from '@avatar-fleet/contracts';
import { HeartbeatThread } from '../src/runtime/heartbeat';
import { BeatCadence } from '../src/runtime/heartbeat-cadence';
import { createLogger } from '../src/runtime/logger';

/** A stand-in orchestrator that records heartbeats and answers after `delayMs`. */
function fakeOrchestrator() {
  const beats: { at: number; body: HeartbeatRequest; auth?: string }[] = [];
  const state = { delayMs: 0, lost: [] as string[], commands: [] as string[] };
  const server = http.createServer((req, res) => {
    let raw = '';
    req.on('data', (c: Buffer) => (raw += c));
    req.on('end', () => {
      beats.push({ at: Date.now(), body: JSON.parse(raw) as HeartbeatRequest, auth: req.headers.authorization });
      const reply: HeartbeatResponse = { renewed: [], lost: state.lost, cancelled: [], commands: state.commands as HeartbeatResponse['commands'], leaseExpiresAt: new Date().toISOString() };
      setTimeout(() => res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(reply)), state.delayMs);
    });
  });
  return { server, beats, state };
}

describe('heartbeat thread', () => {
  const fake = fakeOrchestrator();
  let url = '';
  before(() => new Promise<void>((resolve) => fake.server.listen(0, '127.0.0.1', () => {
    url = `http://127.0.0.1:${(fake.server.address() as { port: number }).port}`;
    resolve();
  })));
  after(() => {
    fake.server.closeAllConnections();
    fake.server.close();
  });

  test('beats with the latest state and telemetry, hands the replies back with the leases they answered, and stops', async () => {
    const replies: { reply: HeartbeatResponse; sent: HeldLease[] }[] = [];
    const thread = new HeartbeatThread(createLogger('error'), { onReply: (reply, sent) => replies.push({ reply, sent }), onFailure: () => undefined });
    fake.state.lost = ['00000000-0000-4000-8000-000000000001'];
    thread.start({ baseUrl: url, apiKey: 'internal-key', workerId: 'w-1', intervalMs: 200, logLevel: 'error', executionProvider: 'cpu', state: { activity: 'idle', leases: [] } });
    const lease = { jobId: '00000000-0000-4000-8000-000000000001', attempt: 2, leaseToken: '00000000-0000-4000-8000-0000000000aa' };
    thread.setState({ activity: 'busy', leases: [lease] });
    while (replies.length < 4) await new Promise((r) => setTimeout(r, 20));
    await thread.stop();
    const count = fake.beats.length;
    await new Promise((r) => setTimeout(r, 400));
    assert.equal(fake.beats.length, count, 'no beat after stop');
    assert.equal(fake.beats[0]!.auth, 'Bearer internal-key');
    const last = fake.beats.at(-1)!.body;
    assert.equal(last.activity, 'busy');
    assert.deepEqual(last.leases, [lease]);
    assert.equal(typeof last.telemetry?.cpuPct, 'number');
    assert.equal(typeof last.telemetry?.memTotalMb, 'number');
    assert.equal(last.executionProvider, 'cpu');
    assert.deepEqual(replies.at(-1)!.sent, [lease]);
    assert.deepEqual(replies.at(-1)!.reply.lost, [lease.jobId]);
    // The cadence itself is checked below against a made-up clock: a loaded machine delays timers
    // and requests by any amount, so gaps measured here would say more about the machine than the code.
  });

  test('warns when a beat comes more than 20 % late (a slow orchestrator here)', async () => {
    fake.beats.length = 0;
    fake.state.delayMs = 400;
    const drifts: { expectedMs: number; actualMs: number }[] = [];
    const thread = new HeartbeatThread(createLogger('error'), { onReply: () => undefined, onFailure: () => undefined, onDrift: (d) => drifts.push(d) });
    thread.start({ baseUrl: url, apiKey: 'k', workerId: 'w-2', intervalMs: 200, logLevel: 'error', executionProvider: 'cpu', state: { activity: 'idle', leases: [] } });
    while (drifts.length < 2) await new Promise((r) => setTimeout(r, 20));
    await thread.stop();
    fake.state.delayMs = 0;
    assert.equal(drifts[0]!.expectedMs, 200);
    // A lower bound only: each beat waits for its reply (400 ms), and load can only make it later.
    assert.ok(drifts.every((d) => d.actualMs >= 380), `drifts ${JSON.stringify(drifts)}`);
  });
});

describe('heartbeat cadence (a made-up clock)', () => {
  test('each beat is due one interval after the previous one started, whatever the beat took', () => {
    const cadence = new BeatCadence(200);
    assert.equal(cadence.started(1_000), undefined, 'the first beat has nothing to drift from');
    assert.equal(cadence.delay(1_030), 170, 'a 30 ms beat: the next one 170 ms after it ended');
    assert.equal(cadence.started(1_200), undefined);
    assert.equal(cadence.delay(1_450), 0, 'a beat longer than the interval: the next one at once');
    assert.deepEqual(cadence.started(1_450), { expectedMs: 200, actualMs: 250 }, 'and that beat starts 25 % late: drift');
  });

  test('a gap more than 20 % off the interval is drift, either way; 20 % exactly is not', () => {
    const gaps = (starts: number[]) => {
      const cadence = new BeatCadence(200);
      return starts.map((at) => cadence.started(at));
    };
    assert.deepEqual(gaps([0, 240, 400]), [undefined, undefined, undefined]);
    assert.deepEqual(gaps([0, 241]), [undefined, { expectedMs: 200, actualMs: 241 }]);
    assert.deepEqual(gaps([0, 159]), [undefined, { expectedMs: 200, actualMs: 159 }]);
    assert.deepEqual(gaps([0, 30_200, 30_400]), [undefined, { expectedMs: 200, actualMs: 30_200 }, undefined], 'a thread frozen for 30 s, then back on time');
  });
});
