import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import * as ort from 'onnxruntime-node';
import os from 'node:os';
import path from 'node:path';
import { describe, test } from 'node:test';
import { writeDevModelSet } from '../src/inference/dev-models';
import { ModelLoader } from '../src/inference/model-loader';
import { MuseTalkModels } from '../src/inference/musetalk';
import { createLogger } from '../src/runtime/logger';
import { reluModel } from './helpers/tiny-onnx';

const log = createLogger('error');

async function load(precision: 'fp32' | 'fp16', batchSize: number | null): Promise<MuseTalkModels> {
  const modelDir = mkdtempSync(path.join(os.tmpdir(), `musetalk-${precision}-`));
  await writeDevModelSet(path.join(modelDir, 'musetalk'), { precision, batchSize });
  return MuseTalkModels.load(new ModelLoader({ modelDir, executionProvider: 'cpu', requireRealModels: false, log }), log);
}

describe('execution providers', () => {
  test('tensorrt falls back to CUDA and then the CPU, saying so; cuda asked for explicitly fails instead', async () => {
    const modelDir = mkdtempSync(path.join(os.tmpdir(), 'ep-'));
    writeFileSync(path.join(modelDir, 'relu.onnx'), reluModel());
    const lines: string[] = [];
    const recorder = { ...log, warn: (m: string) => void lines.push(m) };
    const loader = new ModelLoader({ modelDir, executionProvider: 'tensorrt', requireRealModels: false, log: recorder });
    const session = await loader.session('relu.onnx');
    assert.equal(loader.executionProvider, 'cpu');
    assert.deepEqual(lines, ['TensorRT execution provider unavailable; using CUDA', 'CUDA execution provider unavailable; using CPU']);
    const out = await session.run({ x: new ort.Tensor('float32', Float32Array.from([-1, 2, -3, 4]), [1, 4]) });
    assert.deepEqual(Array.from(out.y!.data as Float32Array), [0, 2, 0, 4]);
    const strict = new ModelLoader({ modelDir, executionProvider: 'cuda', requireRealModels: false, log });
    await assert.rejects(strict.session('relu.onnx'), /EXECUTION_PROVIDER=cuda but the CUDA provider failed to load/);
  });
});

describe('MuseTalk networks wrapper', () => {
  test('a fixed-batch fp16 export: any number of frames, padded and trimmed, float32 in and out', async () => {
    const models = await load('fp16', 2);
    assert.equal(models.batchSize, 2);
    const images = Float32Array.from({ length: 5 * 3 * 256 * 256 }, (_, i) => Math.sin(i) * 0.5);
    const moments = await models.vaeEncode(images, 5);
    assert.equal(moments.length, 5 * 8 * 32 * 32);
    assert.ok(moments.every(Number.isFinite));
    const out = await models.unet(moments.subarray(0, 3 * 8 * 32 * 32), new Float32Array(3 * 50 * 384).fill(0.1), 3);
    assert.equal(out.length, 3 * 4 * 32 * 32);
    const faces = await models.vaeDecode(out, 3);
    assert.equal(faces.length, 3 * 3 * 256 * 256);
    assert.ok(faces.every((v) => v >= -1 && v <= 1));
    // Frame k of a padded batch is computed as if alone: the same input gives the same output in any slot.
    const one = await models.vaeEncode(images.subarray(4 * 3 * 256 * 256), 1);
    assert.deepEqual(Array.from(one.subarray(0, 64)), Array.from(moments.subarray(4 * 8 * 32 * 32, 4 * 8 * 32 * 32 + 64)));
  });

  test('a dynamic-batch fp32 export runs the whole batch in one call; whisper gives [1500,5,384]', async () => {
    const models = await load('fp32', null);
    assert.equal(models.batchSize, 8);
    const out = await models.unet(new Float32Array(8 * 8 * 32 * 32).fill(0.2), new Float32Array(8 * 50 * 384), 8);
    assert.equal(out.length, 8 * 4 * 32 * 32);
    assert.equal((await models.whisper(new Float32Array(80 * 3000))).length, 1500 * 5 * 384);
    assert.match(models.version, /^dev1-[0-9a-f]{16}$/);
    assert.equal(models.dev, true);
  });
});
