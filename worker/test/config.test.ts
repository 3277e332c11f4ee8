import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { loadWorkerConfig, WorkerConfigError } from '../src/config/worker.config';

const base = { ORCHESTRATOR_BASE_URL: 'https://api.example.com', INTERNAL_API_KEY: 'k-123' };

function problems(env: Record<string, string>): string[] {
  try {
    loadWorkerConfig(env);
  } catch (error) {
    assert.ok(error instanceof WorkerConfigError);
    return error.problems;
  }
  assert.fail('expected a configuration error');
}

describe('worker configuration', () => {
  test('defaults: queue mode, local storage, one slot, the provider guessed from the host', () => {
    const config = loadWorkerConfig({ ...base, SALAD_MACHINE_ID: 'm-1' }, '/srv');
    assert.equal(config.mode, 'queue');
    assert.deepEqual(config.storage, { driver: 'local', local: { root: '/srv/.data/storage' } });
    assert.equal(config.slots, 1);
    assert.equal(config.provider, 'salad');
    assert.equal(config.port, 8000);
    assert.equal(config.modelSync, undefined);
  });

  test('legacy variables: BUFFER_WORKER_ID alone means buffer mode with that id; GPU_CLASS_NAME stands in for GPU_CLASS', () => {
    const config = loadWorkerConfig({ ...base, BUFFER_WORKER_ID: 'buffer-local-1', GPU_CLASS_NAME: 'RTX 3090 (24 GB)' });
    assert.equal(config.mode, 'buffer');
    assert.equal(config.fixedWorkerId, 'buffer-local-1');
    // Read as the orchestrator reads a legacy host's: the class without its memory, which becomes the VRAM.
    assert.equal(config.gpuClass, 'RTX 3090');
    assert.equal(config.vramGbOverride, 24);
    assert.equal(loadWorkerConfig({ ...base, GPU_CLASS_NAME: 'RTX 3090 (24 GB)', GPU_VRAM_GB: '20' }).vramGbOverride, 20);
    assert.equal(loadWorkerConfig({ ...base, GPU_CLASS_NAME: 'A100' }).gpuClass, 'A100');
    assert.equal(loadWorkerConfig({ ...base, GPU_CLASS: 'RTX 3080', GPU_CLASS_NAME: 'old' }).gpuClass, 'RTX 3080');
  });

  test('B2 credentials select the b2 driver (the seeds set only B2_*)', () => {
    const config = loadWorkerConfig({ ...base, WORKER_MODE: 'buffer', B2_KEY_ID: 'id', B2_APP_KEY: 'app', B2_BUCKET_NAME: 'talking-avatar', B2_PART_SIZE_MB: '10' });
    assert.equal(config.storage.driver, 'b2');
    assert.deepEqual(config.storage.driver === 'b2' && config.storage.b2, {
      keyId: 'id', appKey: 'app', bucket: 'talking-avatar', authUrl: undefined, largeFileThresholdBytes: undefined, partSizeBytes: 10 * 1024 * 1024,
    });
  });

  test('one error names every bad variable, with hints, and never a value', () => {
    const secret = 'sup3r-s3cret-value';
    const found = problems({
      ORCHESTRATOR_BASE_URL: 'fleet.internal.test', INTERNAL_API_KEY: ` ${secret}\n`, WORKER_MODE: 'turbo', STORAGE_DRIVER: 'b2',
      B2_APP_KEY: secret, WORKER_SLOTS: '0', MODEL_SYNC_ENABLED: 'true', GPU_HOURLY_COST: 'cheap',
    });
    const text = found.join('\n');
    for (const name of ['ORCHESTRATOR_BASE_URL', 'INTERNAL_API_KEY', 'WORKER_MODE', 'B2_KEY_ID', 'B2_BUCKET_NAME', 'WORKER_SLOTS', 'MODEL_SYNC_BUCKET', 'MODEL_SYNC_SOURCES', 'MODEL_SYNC_KEY_ID', 'GPU_HOURLY_COST']) {
      assert.match(text, new RegExp(name), `${name} is named`);
    }
    assert.match(text, /scheme missing/);
    assert.match(text, /stray space/);
    assert.doesNotMatch(text, new RegExp(secret));
    assert.doesNotMatch(text, /fleet\.internal\.test/);
  });

  test('required variables are named when absent', () => {
    const text = problems({}).join('\n');
    assert.match(text, /ORCHESTRATOR_BASE_URL is required/);
    assert.match(text, /INTERNAL_API_KEY is required/);
  });

  test('model sync settings are read from MODEL_SYNC_*', () => {
    const config = loadWorkerConfig({
      ...base, MODEL_SYNC_ENABLED: 'true', MODEL_SYNC_DRIVER: 's3', MODEL_SYNC_BUCKET: 'models', MODEL_SYNC_KEY_ID: 'a', MODEL_SYNC_APP_KEY: 'b',
      MODEL_SYNC_ENDPOINT: 'http://minio:9000', MODEL_SYNC_PREFIX: 'v1', MODEL_SYNC_SOURCES: 'musetalk,blazeface', REQUIRE_REAL_MODELS: 'true',
    });
    assert.deepEqual(config.modelSync, {
      storage: { driver: 's3', s3: { bucket: 'models', endpoint: 'http://minio:9000', region: 'us-east-1', accessKeyId: 'a', secretAccessKey: 'b', forcePathStyle: true } },
      prefix: 'v1',
      sources: ['musetalk', 'blazeface'],
    });
    assert.equal(config.requireRealModels, true);
  });

  test('WORKER_KINDS is checked against the job-kind map', () => {
    assert.deepEqual(loadWorkerConfig({ ...base, WORKER_KINDS: 'lipsync' }).kinds, ['lipsync']);
    assert.match(problems({ ...base, WORKER_KINDS: 'lipsync,upscale' }).join(), /WORKER_KINDS must be a comma-separated list of avatar\.prepare, lipsync/);
  });
});
