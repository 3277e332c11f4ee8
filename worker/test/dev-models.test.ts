import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import * as ort from 'onnxruntime-node';
import { EXIT_REFUSED, EXIT_USAGE, main } from '../src/cli/models-dev';
import { writeDevModelSet, type DevModelMetadata, type DevModelSetReport, type DevPrecision } from '../src/inference/dev-models';
import { MUSETALK_FILES as DEV_MODEL_FILES, VAE_SCALE as VAE_SCALING_FACTOR } from '../src/inference/musetalk-contract';
import { fromHalf as fromFloat16Bits, fromHalfArray as float16BitsToFloat32, toHalf as toFloat16Bits, toHalfArray as float32ToFloat16Bits } from '../src/inference/float16';

const scratch = mkdtempSync(path.join(os.tmpdir(), 'dev-models-test-'));
after(() => rmSync(scratch, { recursive: true, force: true }));
let dirCount = 0;
const freshDir = () => path.join(scratch, `set-${dirCount++}`);

/** Deterministic fill in [lo, hi] (an LCG is enough to make inputs differ). */
function randomFloats(n: number, seed: number, lo = -1, hi = 1): Float32Array {
  const out = new Float32Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = lo + ((hi - lo) * s) / 4294967296;
  }
  return out;
}

const product = (dims: readonly number[]) => dims.reduce((a, b) => a * b, 1);

function floatTensor(dtype: string, values: Float32Array, dims: number[]): ort.Tensor {
  return dtype === 'float16' ? new ort.Tensor('float16', float32ToFloat16Bits(values), dims) : new ort.Tensor('float32', values, dims);
}

function asFloats(t: ort.Tensor): Float32Array {
  return t.type === 'float16' ? float16BitsToFloat32(t.data as Uint16Array) : (t.data as Float32Array);
}

/** Feeds for every input of `file`, shaped by the set's metadata (dynamic dims → `dynamicBatch`). */
function feedsFor(meta: DevModelMetadata, file: string, seed: number, dynamicBatch = 1, range: [number, number] = [-1, 1]): Record<string, ort.Tensor> {
  const feeds: Record<string, ort.Tensor> = {};
  let i = 0;
  for (const [name, spec] of Object.entries(meta.models[file]!.inputs)) {
    const dims = spec.shape.map((d) => (typeof d === 'number' ? d : dynamicBatch));
    feeds[name] = spec.dtype === 'int64' ? new ort.Tensor('int64', new BigInt64Array(product(dims)), dims) : floatTensor(spec.dtype, randomFloats(product(dims), seed * 31 + i++, ...range), dims);
  }
  return feeds;
}

function open(dir: string, file: string): Promise<ort.InferenceSession> {
  // 'all' as the worker's ModelLoader uses, so graph rewrites that could drop an input are exercised.
  return ort.InferenceSession.create(path.join(dir, file), { executionProviders: ['cpu'], graphOptimizationLevel: 'all' });
}

async function only(session: ort.InferenceSession, feeds: Record<string, ort.Tensor>): Promise<ort.Tensor> {
  const result = await session.run(feeds);
  const out = result[session.outputNames[0]!];
  assert.ok(out);
  return out;
}

const maxAbsDiff = (a: Float32Array, b: Float32Array) => a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i]!)), 0);

interface Expected {
  inputs: [string, string, (number | string)[]][];
  output: [string, string, number[]];
}

function contract(precision: DevPrecision, batch: number | null): Record<string, Expected> {
  const f = precision === 'fp16' ? 'float16' : 'float32';
  const b = batch ?? 'batch';
  const run = batch ?? 1;
  return {
    [DEV_MODEL_FILES.unet]: {
      inputs: [['latent', f, [b, 8, 32, 32]], ['timestep', 'int64', [1]], ['audio_prompt', f, [b, 50, 384]]],
      output: ['latent_out', f, [run, 4, 32, 32]],
    },
    [DEV_MODEL_FILES.vaeEncoder]: { inputs: [['image', f, [b, 3, 256, 256]]], output: ['moments', f, [run, 8, 32, 32]] },
    [DEV_MODEL_FILES.vaeDecoder]: { inputs: [['latent', f, [b, 4, 32, 32]]], output: ['image', f, [run, 3, 256, 256]] },
    [DEV_MODEL_FILES.whisper]: { inputs: [['input_features', 'float32', ['batch', 80, 3000]]], output: ['hidden_states', f, [1, 1500, 5, 384]] },
  };
}

for (const [precision, batchSize] of [['fp32', 8], ['fp16', 2]] as const) {
  describe(`dev model set, ${precision}, batch ${batchSize}`, () => {
    const dir = freshDir();
    let report: DevModelSetReport;
    const sessions = new Map<string, ort.InferenceSession>();
    before(async () => {
      report = await writeDevModelSet(dir, { precision, batchSize });
      for (const file of Object.values(DEV_MODEL_FILES)) sessions.set(file, await open(dir, file));
    });
    after(async () => {
      for (const s of sessions.values()) await s.release();
    });

    test('metadata.json marks the set dev and states precision, batch and every I/O dtype', () => {
      const meta = JSON.parse(readFileSync(path.join(dir, 'metadata.json'), 'utf8')) as DevModelMetadata;
      assert.deepEqual(meta, report.metadata);
      assert.equal(meta.dev, true);
      assert.equal(meta.format, 'onnx');
      assert.equal(meta.opset, 17);
      assert.equal(meta.precision, precision);
      assert.equal(meta.batchSize, batchSize);
      assert.equal(meta.generator, 'avatar-fleet models:dev');
      assert.match(meta.version, /^dev1-[0-9a-f]{16}$/);
      assert.equal(meta.batchSizes[DEV_MODEL_FILES.whisper], null);
      for (const [file, expected] of Object.entries(contract(precision, batchSize))) {
        const io = meta.models[file]!;
        for (const [name, dtype, shape] of expected.inputs) assert.deepEqual(io.inputs[name], { dtype, shape }, `${file} ${name}`);
        assert.equal(io.outputs[expected.output[0]]!.dtype, expected.output[1]);
      }
      assert.deepEqual(report.files.map((f) => f.name).sort(), [...Object.values(DEV_MODEL_FILES), 'metadata.json'].sort());
    });

    for (const [file, expected] of Object.entries(contract(precision, batchSize))) {
      test(`${file}: names, dtypes and shapes match the contract; output depends on input`, async () => {
        const session = sessions.get(file)!;
        assert.deepEqual(session.inputNames, expected.inputs.map(([name]) => name));
        assert.deepEqual(session.outputNames, [expected.output[0]]);
        for (const [name, dtype, shape] of expected.inputs) {
          const m = session.inputMetadata.find((x) => x.name === name);
          assert.ok(m && m.isTensor, name);
          assert.equal(m.type, dtype, name);
          assert.deepEqual(m.shape, shape, name);
        }
        const meta = report.metadata;
        const a = await only(session, feedsFor(meta, file, 1));
        assert.equal(a.type, expected.output[1]);
        assert.deepEqual(a.dims, expected.output[2]);
        const av = asFloats(a);
        assert.ok(av.every(Number.isFinite), 'finite outputs');
        const b = asFloats(await only(session, feedsFor(meta, file, 2)));
        assert.ok(maxAbsDiff(av, b) > 1e-2, 'different inputs give different outputs');
        assert.deepEqual(asFloats(await only(session, feedsFor(meta, file, 1))), av, 'same input, same output');

      });
    }

    test('unet: timestep is a required input (not pruned) and the audio alone changes the output', async () => {
      const unet = sessions.get(DEV_MODEL_FILES.unet)!;
      const feeds = feedsFor(report.metadata, DEV_MODEL_FILES.unet, 4);
      const { timestep: _dropped, ...withoutTimestep } = feeds;
      await assert.rejects(unet.run(withoutTimestep), /timestep/);
      const base = asFloats(await only(unet, feeds));
      const dims = [batchSize, 50, 384];
      const otherAudio = floatTensor(precision === 'fp16' ? 'float16' : 'float32', randomFloats(product(dims), 99), dims);
      assert.ok(maxAbsDiff(base, asFloats(await only(unet, { ...feeds, audio_prompt: otherAudio }))) > 1e-3);
    });

    test('vae decoder output stays within [-1, 1] even for extreme latents', async () => {
      const feeds = feedsFor(report.metadata, DEV_MODEL_FILES.vaeDecoder, 5, 1, [-40, 40]);
      const image = asFloats(await only(sessions.get(DEV_MODEL_FILES.vaeDecoder)!, feeds));
      assert.ok(image.every((v) => v >= -1 && v <= 1));
      assert.ok(image.some((v) => v < -0.9) && image.some((v) => v > 0.9), 'uses the range');
    });

    test('encode → ×0.18215 → decode keeps a smooth image recognisable (a dev video shows the face)', async () => {
      const n = batchSize;
      const image = new Float32Array(n * 3 * 256 * 256);
      for (let i = 0; i < image.length; i++) {
        const x = i % 256;
        const y = Math.floor(i / 256) % 256;
        const c = Math.floor(i / 65536) % 3;
        image[i] = 0.6 * Math.sin((x + 40 * c) / 40) * Math.cos(y / 50);
      }
      const dtype = precision === 'fp16' ? 'float16' : 'float32';
      const moments = asFloats(await only(sessions.get(DEV_MODEL_FILES.vaeEncoder)!, { image: floatTensor(dtype, image, [n, 3, 256, 256]) }));
      const latent = new Float32Array(n * 4 * 1024);
      for (let k = 0; k < n; k++) for (let j = 0; j < 4 * 1024; j++) latent[k * 4096 + j] = moments[k * 8192 + j]! * VAE_SCALING_FACTOR;
      const decoded = asFloats(await only(sessions.get(DEV_MODEL_FILES.vaeDecoder)!, { latent: floatTensor(dtype, latent, [n, 4, 32, 32]) }));
      const meanError = decoded.reduce((s, v, i) => s + Math.abs(v - image[i]!), 0) / decoded.length;
      assert.ok(meanError < 0.15, `mean abs error ${meanError.toFixed(3)}`);
    });
  });
}

describe('dev model set options and determinism', () => {
  test('same seed gives byte-identical files; another seed other weights and version', async () => {
    const [a, b, c] = [freshDir(), freshDir(), freshDir()];
    const ra = await writeDevModelSet(a, { seed: 7 });
    await writeDevModelSet(b, { seed: 7 });
    const rc = await writeDevModelSet(c, { seed: 8 });
    for (const f of ra.files) assert.ok(readFileSync(f.path).equals(readFileSync(path.join(b, f.name))), f.name);
    assert.notEqual(readFileSync(path.join(a, DEV_MODEL_FILES.unet)).compare(readFileSync(path.join(c, DEV_MODEL_FILES.unet))), 0);
    assert.notEqual(ra.metadata.version, rc.metadata.version);
  });

  test('fp16 and fp32 sets of one seed compute the same function (within fp16 rounding)', async () => {
    const [d32, d16] = [freshDir(), freshDir()];
    const m32 = (await writeDevModelSet(d32, { precision: 'fp32', batchSize: 1 })).metadata;
    const m16 = (await writeDevModelSet(d16, { precision: 'fp16', batchSize: 1 })).metadata;
    for (const file of Object.values(DEV_MODEL_FILES)) {
      const [s32, s16] = [await open(d32, file), await open(d16, file)];
      const y32 = asFloats(await only(s32, feedsFor(m32, file, 6)));
      const y16 = asFloats(await only(s16, feedsFor(m16, file, 6)));
      assert.ok(maxAbsDiff(y32, y16) < 0.05, `${file}: ${maxAbsDiff(y32, y16)}`);
      await s32.release();
      await s16.release();
    }
  });

  test('a dynamic batch (null) leaves the batch dimension symbolic and runs any batch', async () => {
    const dir = freshDir();
    const report = await writeDevModelSet(dir, { batchSize: null });
    assert.equal(report.metadata.batchSize, null);
    const unet = await open(dir, DEV_MODEL_FILES.unet);
    const latent = unet.inputMetadata[0]!;
    assert.ok(latent.isTensor);
    assert.equal(latent.shape[0], 'batch');
    const out = await only(unet, feedsFor(report.metadata, DEV_MODEL_FILES.unet, 1, 3));
    assert.deepEqual(out.dims, [3, 4, 32, 32]);
    await unet.release();
  });

  test('bad options are refused', async () => {
    await assert.rejects(writeDevModelSet(freshDir(), { batchSize: 0 }), /batch size/);
    await assert.rejects(writeDevModelSet(freshDir(), { precision: 'int8' as DevPrecision }), /precision/);
    await assert.rejects(writeDevModelSet(freshDir(), { seed: -1 }), /seed/);
  });
});

describe('float16 conversion', () => {
  test('round to nearest even, limits, subnormals, Inf and NaN', () => {
    const cases: [number, number][] = [
      [0, 0x0000], [-0, 0x8000], [1, 0x3c00], [-2, 0xc000], [0.5, 0x3800], [65504, 0x7bff], [65520, 0x7c00], [1e6, 0x7c00],
      [Infinity, 0x7c00], [-Infinity, 0xfc00], [2 ** -24, 0x0001], [2 ** -25, 0x0000], [1.5 * 2 ** -25, 0x0001], [2 ** -14, 0x0400],
      [1 + 2 ** -11, 0x3c00], [1 + 3 * 2 ** -11, 0x3c02], [0.1, 0x2e66],
    ];
    for (const [value, bits] of cases) assert.equal(toFloat16Bits(value), bits, `toFloat16Bits(${value})`);
    assert.ok(Number.isNaN(fromFloat16Bits(toFloat16Bits(NaN))));
    for (let bits = 0; bits < 0x7c00; bits += 7) assert.equal(toFloat16Bits(fromFloat16Bits(bits)), bits);
  });
});

describe('models-dev CLI', () => {
  const capture = () => {
    const lines: string[] = [];
    return { lines, log: (l: string) => lines.push(l) };
  };

  test('refuses to overwrite a real model set without --force, and replaces it with --force', async () => {
    const modelDir = freshDir();
    const folder = path.join(modelDir, 'musetalk');
    mkdirSync(folder, { recursive: true });
    writeFileSync(path.join(folder, 'metadata.json'), JSON.stringify({ format: 'onnx', precision: 'fp16' }));
    writeFileSync(path.join(folder, DEV_MODEL_FILES.unet), 'real weights');
    const err = capture();
    assert.equal(await main(['--dir', modelDir], () => {}, err.log), EXIT_REFUSED);
    assert.match(err.lines.join('\n'), /refusing to overwrite.*not marked "dev": true.*--force/s);
    assert.equal(readFileSync(path.join(folder, DEV_MODEL_FILES.unet), 'utf8'), 'real weights');

    // ONNX files without metadata.json are not assumed to be a dev set either.
    rmSync(path.join(folder, 'metadata.json'));
    assert.equal(await main(['--dir', modelDir], () => {}, () => {}), EXIT_REFUSED);

    const out = capture();
    assert.equal(await main(['--dir', modelDir, '--force', '--precision', 'fp16', '--batch', '4'], out.log, () => {}), 0);
    const meta = JSON.parse(readFileSync(path.join(folder, 'metadata.json'), 'utf8')) as DevModelMetadata;
    assert.equal(meta.dev, true);
    assert.equal(meta.precision, 'fp16');
    assert.equal(meta.batchSize, 4);
    assert.match(out.lines.join('\n'), /musetalk_unet\.onnx/);
  });

  test('replaces an existing dev set without --force; bad arguments exit 2', async () => {
    const modelDir = freshDir();
    assert.equal(await main(['--dir', modelDir, '--batch', 'dynamic'], () => {}, () => {}), 0);
    assert.equal(await main(['--dir', modelDir, '--precision', 'fp32'], () => {}, () => {}), 0);
    for (const bad of [['--precision', 'int8'], ['--batch', '0'], ['--batch'], ['--bogus']]) {
      assert.equal(await main(['--dir', modelDir, ...bad], () => {}, () => {}), EXIT_USAGE, bad.join(' '));
    }
  });

  test('the compiled script runs from the command line, defaulting to $MODEL_DIR', () => {
    const modelDir = freshDir();
    const script = path.join(__dirname, '..', 'src', 'cli', 'models-dev.js');
    const run = spawnSync(process.execPath, [script, '--batch', '1'], { env: { ...process.env, MODEL_DIR: modelDir }, encoding: 'utf8' });
    assert.equal(run.status, 0, run.stderr);
    assert.match(run.stdout, /DEV MuseTalk model set/);
    assert.match(run.stdout, /precision fp32, batch 1/);
    const meta = JSON.parse(readFileSync(path.join(modelDir, 'musetalk', 'metadata.json'), 'utf8')) as DevModelMetadata;
    assert.equal(meta.batchSize, 1);
  });
});
