import assert from 'node:assert/strict';
import { cpSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { useOrchestrator } from '@avatar-fleet/orchestrator/dist/test/helpers/orchestrator-suite';
import { EXIT_CONFIG, EXIT_START_FAILED } from '../src/run-worker';
import { FAST_FLEET, Lane } from './helpers/fleet-fixture';
import { reluModel } from './helpers/tiny-onnx';
import { startWorkerProcess } from './helpers/worker-process';

/** A models bucket (a folder for the local driver) holding a tiny real ONNX model and its metadata. */
function modelBucket(dev: boolean): string {
  const bucket = mkdtempSync(path.join(os.tmpdir(), 'models-bucket-'));
  mkdirSync(path.join(bucket, 'tiny'));
  writeFileSync(path.join(bucket, 'tiny', 'relu.onnx'), reluModel());
  writeFileSync(path.join(bucket, 'tiny', 'metadata.json'), JSON.stringify({ format: 'onnx', dev }));
  return bucket;
}

describe('worker start-up: configuration, models, model sync', () => {
  const suite = useOrchestrator(FAST_FLEET);
  const lane = new Lane(() => suite.orch.url, () => suite.fleet);
  after(() => lane.cleanup());

  test('bad configuration exits 2 with one message naming every bad variable, and no secret', async () => {
    const worker = startWorkerProcess({ ORCHESTRATOR_BASE_URL: 'localhost:8080', INTERNAL_API_KEY: 'secret-key-value ', STORAGE_DRIVER: 'tape' });
    assert.deepEqual(await worker.exited, { code: EXIT_CONFIG, signal: null });
    const out = worker.output();
    assert.match(out, /invalid worker configuration/);
    assert.match(out, /ORCHESTRATOR_BASE_URL .*scheme missing/);
    assert.match(out, /INTERNAL_API_KEY .*stray space/);
    assert.match(out, /STORAGE_DRIVER must be b2, s3 or local/);
    assert.doesNotMatch(out, /secret-key-value/);
  });

  test('model sync fills MODEL_DIR from the bucket, the model loads on the CPU provider, and a restart downloads nothing', async () => {
    const bucket = modelBucket(false);
    const modelDir = mkdtempSync(path.join(os.tmpdir(), 'models-'));
    const env = {
      MODEL_DIR: modelDir, MODEL_SYNC_ENABLED: 'true', MODEL_SYNC_DRIVER: 'local', MODEL_SYNC_BUCKET: bucket, MODEL_SYNC_SOURCES: 'tiny',
      TEST_MODEL: 'tiny/relu.onnx', TEST_MODEL_SET: 'tiny', REQUIRE_REAL_MODELS: 'true', EXECUTION_PROVIDER: 'auto',
    };
    const first = await lane.worker(env);
    assert.match(first.output(), /models synced downloaded=2 unchanged=0/);
    assert.match(first.output(), /test model warmed output=0,2,0,4/);
    assert.match(first.output(), /models loaded executionProvider=cpu models=tiny\/relu\.onnx/);
    first.signal('SIGTERM');
    assert.equal((await first.exited).code, 0);
    const second = await lane.worker(env);
    assert.match(second.output(), /models synced downloaded=0 unchanged=2/);
    second.signal('SIGTERM');
    await second.exited;
  });

  test('REQUIRE_REAL_MODELS refuses a dev model set and a missing model instead of starting', async () => {
    const dev = modelBucket(true);
    const refused = startWorkerProcess(lane.env({ MODEL_DIR: dev, TEST_MODEL_SET: 'tiny', REQUIRE_REAL_MODELS: 'true' }));
    assert.equal((await refused.exited).code, EXIT_START_FAILED);
    assert.match(refused.output(), /tiny is a dev model set .* REQUIRE_REAL_MODELS=true/);
    assert.doesNotMatch(refused.output(), /registered/);

    const empty = mkdtempSync(path.join(os.tmpdir(), 'models-'));
    const missing = startWorkerProcess(lane.env({ MODEL_DIR: empty, TEST_MODEL: 'tiny/relu.onnx' }));
    assert.equal((await missing.exited).code, EXIT_START_FAILED);
    assert.match(missing.output(), /model tiny\/relu\.onnx is missing from MODEL_DIR/);

    const devAllowed = mkdtempSync(path.join(os.tmpdir(), 'models-'));
    cpSync(dev, devAllowed, { recursive: true });
    const warned = await lane.worker({ MODEL_DIR: devAllowed, TEST_MODEL_SET: 'tiny' });
    assert.match(warned.output(), /running on a dev model set/);
    warned.signal('SIGTERM');
    await warned.exited;
  });

  test('model sync misconfigured or unreachable fails fast with the reason', async () => {
    const bucket = modelBucket(false);
    const wrongSource = startWorkerProcess(lane.env({ MODEL_SYNC_ENABLED: 'true', MODEL_SYNC_DRIVER: 'local', MODEL_SYNC_BUCKET: bucket, MODEL_SYNC_SOURCES: 'tiny,musetalk' }));
    assert.equal((await wrongSource.exited).code, EXIT_START_FAILED);
    assert.match(wrongSource.output(), /start-up failed .*musetalk/);

    const startedAt = Date.now();
    const unreachable = startWorkerProcess(lane.env({
      MODEL_SYNC_ENABLED: 'true', MODEL_SYNC_DRIVER: 'b2', MODEL_SYNC_ENDPOINT: 'http://127.0.0.1:9', MODEL_SYNC_BUCKET: 'models-bucket',
      MODEL_SYNC_KEY_ID: 'key-id', MODEL_SYNC_APP_KEY: 'very-secret-app-key', MODEL_SYNC_SOURCES: 'tiny',
    }));
    assert.equal((await unreachable.exited).code, EXIT_START_FAILED);
    // Fails rather than retries for ever (a retrying start would run into the test's own time-out).
    assert.ok(Date.now() - startedAt < 60_000, 'failed fast');
    assert.match(unreachable.output(), /start-up failed/);
    assert.doesNotMatch(unreachable.output(), /very-secret-app-key/);
  });
});
