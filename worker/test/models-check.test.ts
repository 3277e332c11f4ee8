import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { main } from '../src/cli/models-check';
import { writeDevModelSet } from '../src/inference/dev-models';
import { attr, dataTypeOf, encodeModel, node, valueInfo, type DType } from '../src/inference/onnx-writer';

const root = mkdtempSync(path.join(os.tmpdir(), 'models-check-'));
const CLI = path.resolve(__dirname, '../src/cli/models-check.js');

async function check(dir: string): Promise<{ code: number; lines: string[] }> {
  const lines: string[] = [];
  const code = await main([dir], (line) => lines.push(line), (line) => lines.push(line));
  return { code, lines };
}

/** The line of one file's verdict. */
function verdictOf(lines: string[], file: string): string {
  const line = lines.find((l) => l.includes(` ${file}: `));
  assert.ok(line, `no verdict for ${file} in\n${lines.join('\n')}`);
  return line;
}

/** A copy of the good set with one file replaced by a one-node graph (Identity, or a Cast to float). */
function brokenSet(name: string, file: string, input: { name: string; dtype: DType; dims: Array<number | string> }, output: { name: string; dims: Array<number | string> }): string {
  const dir = path.join(root, name);
  cpSync(path.join(root, 'good'), dir, { recursive: true });
  const op = input.dtype === 'int64' ? node('Cast', [input.name], [output.name], { to: attr.int(dataTypeOf('float32')) }) : node('Identity', [input.name], [output.name]);
  writeFileSync(path.join(dir, file), encodeModel({
    graphName: name, nodes: [op], initializers: [],
    inputs: [valueInfo(input.name, input.dtype, input.dims)],
    outputs: [valueInfo(output.name, 'float32', output.dims)],
  }));
  return dir;
}

describe('models:check', () => {
  before(async () => {
    await writeDevModelSet(path.join(root, 'good'), { batchSize: 8 });
    await writeDevModelSet(path.join(root, 'model-dir', 'musetalk'), { precision: 'fp16', batchSize: null });
  });
  after(() => rmSync(root, { recursive: true, force: true }));

  test('the dev set passes, fp32 with a fixed batch and fp16 with a dynamic one, given the set or its MODEL_DIR', async () => {
    const fixed = await check(path.join(root, 'good'));
    assert.equal(fixed.code, 0, fixed.lines.join('\n'));
    assert.equal(fixed.lines.filter((l) => /^ {2}ok {4}/.test(l)).length, 5, fixed.lines.join('\n'));
    assert.match(verdictOf(fixed.lines, 'musetalk_unet.onnx'), /latent float32 \[8,8,32,32\], timestep int64 \[1\], audio_prompt float32 \[8,50,384\] -> latent_out float32 \[8,4,32,32\]; batch 8/);
    assert.match(verdictOf(fixed.lines, 'metadata.json'), /a dev set/);
    const dynamic = await check(path.join(root, 'model-dir'));
    assert.equal(dynamic.code, 0, dynamic.lines.join('\n'));
    assert.match(dynamic.lines[0]!, /model-dir\/musetalk$/);
    assert.match(verdictOf(dynamic.lines, 'musetalk_vae_decoder.onnx'), /latent float16 \[batch,4,32,32\] -> image float16 .*batch dynamic/);
  });

  test('a missing file, a wrong input name, a wrong dtype and a wrong output shape each fail with what is wrong', async () => {
    const missing = path.join(root, 'missing');
    cpSync(path.join(root, 'good'), missing, { recursive: true });
    rmSync(path.join(missing, 'musetalk_whisper_encoder.onnx'));
    let result = await check(missing);
    assert.equal(result.code, 1);
    assert.match(verdictOf(result.lines, 'musetalk_whisper_encoder.onnx'), /FAIL {2}musetalk_whisper_encoder\.onnx: missing/);
    assert.match(verdictOf(result.lines, 'musetalk_unet.onnx'), /^ {2}ok/, 'the other files still get their own verdicts');
    assert.match(result.lines.at(-1)!, /failed: 1 of 5 files/);

    result = await check(brokenSet('renamed', 'musetalk_vae_decoder.onnx', { name: 'latents', dtype: 'float32', dims: ['B', 4, 32, 32] }, { name: 'image', dims: ['B', 4, 32, 32] }));
    assert.equal(result.code, 1);
    assert.match(verdictOf(result.lines, 'musetalk_vae_decoder.onnx'), /FAIL.*no input named 'latent' \(the graph's inputs: latents\); input 'latents' is not in the contract/);

    result = await check(brokenSet('int-image', 'musetalk_vae_encoder.onnx', { name: 'image', dtype: 'int64', dims: ['B', 3, 256, 256] }, { name: 'moments', dims: ['B', 3, 256, 256] }));
    assert.equal(result.code, 1);
    assert.match(verdictOf(result.lines, 'musetalk_vae_encoder.onnx'), /FAIL.*input 'image' is int64; the worker feeds float32 or float16/);

    // Declared as the contract says, but what it computes has the wrong shape: only the run shows it.
    result = await check(brokenSet('shape', 'musetalk_vae_decoder.onnx', { name: 'latent', dtype: 'float32', dims: ['B', 4, 32, 32] }, { name: 'image', dims: ['B', 3, 256, 256] }));
    assert.equal(result.code, 1);
    assert.match(verdictOf(result.lines, 'musetalk_vae_decoder.onnx'), /FAIL.*a run with batch 1 gave 'image' \[1,4,32,32\]; the contract is \[1,3,256,256\]/);
  });

  test('metadata.json: missing, not JSON, or batch sizes that disagree with the graphs fail; no version is a note', async () => {
    const dir = path.join(root, 'meta');
    cpSync(path.join(root, 'good'), dir, { recursive: true });
    const metaFile = path.join(dir, 'metadata.json');
    const meta = JSON.parse(readFileSync(metaFile, 'utf8')) as Record<string, unknown>;
    writeFileSync(metaFile, '{"dev": true,');
    assert.match(verdictOf((await check(dir)).lines, 'metadata.json'), /FAIL.*not valid JSON/);
    writeFileSync(metaFile, JSON.stringify({ ...meta, batchSizes: { ...(meta.batchSizes as object), 'musetalk_unet.onnx': 4 } }));
    assert.match(verdictOf((await check(dir)).lines, 'metadata.json'), /FAIL.*batchSizes says 4 for musetalk_unet\.onnx, whose graph has 8/);
    const { version: _version, ...unversioned } = meta;
    writeFileSync(metaFile, JSON.stringify(unversioned));
    const result = await check(dir);
    assert.equal(result.code, 0);
    assert.ok(result.lines.some((l) => /note: no "version"/.test(l)), result.lines.join('\n'));
    rmSync(metaFile);
    assert.match(verdictOf((await check(dir)).lines, 'metadata.json'), /FAIL.*missing/);
  });

  test('as a command: exit status 0 for a good set, 1 for a broken one, 2 with no folder', () => {
    const run = (...args: string[]) => spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8' });
    assert.equal(run(path.join(root, 'good')).status, 0);
    const broken = run(path.join(root, 'missing'));
    assert.equal(broken.status, 1);
    assert.match(broken.stdout, /FAIL {2}musetalk_whisper_encoder\.onnx: missing/);
    const usage = run();
    assert.equal(usage.status, 2);
    assert.match(usage.stderr, /which folder\?/);
    assert.equal(run(path.join(root, 'nowhere')).status, 2);
  });
});
