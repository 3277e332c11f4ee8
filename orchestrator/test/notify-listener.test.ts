import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Channels, NotifyListener } from '../src/database/notify-listener';

test('a local emit runs the handlers at once and swallows exactly one matching echo from the database', () => {
  const listener = new NotifyListener('postgres://unused');
  const seen: string[] = [];
  listener.on(Channels.jobsQueued, (kind) => seen.push(kind));
  const fromDatabase = (payload: string) =>
    (listener as unknown as { fromDatabase(c: string, p: string): void }).fromDatabase(Channels.jobsQueued, payload);

  listener.emitLocal(Channels.jobsQueued, 'lipsync');
  assert.deepEqual(seen, ['lipsync']);
  fromDatabase('lipsync'); // the echo of our own NOTIFY
  assert.deepEqual(seen, ['lipsync']);
  fromDatabase('lipsync'); // another replica's enqueue
  fromDatabase('avatar.prepare');
  assert.deepEqual(seen, ['lipsync', 'lipsync', 'avatar.prepare']);
});
