import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import * as ort from 'onnxruntime-node';
import { errorMessage, firstLine } from '../runtime/logger';
import { MUSETALK_CONTRACT, type NetworkRule, type TensorRule } from './musetalk-contract';

/**
 * Checks a MuseTalk model folder against the contract the worker relies on (MUSETALK_CONTRACT,
 * docs/models.md): the four files, each network's input names, dtypes and shapes, its first output,
 * a run on zeros, and metadata.json. One verdict per file, so an export that is wrong says where
 * and how before a worker ever loads it.
 */

export interface Verdict {
  file: string;
  ok: boolean;
  /** What is wrong (when not ok), or what was found (when ok). */
  detail: string;
  /** Worth knowing, not wrong: a different output name, a missing version. */
  notes: string[];
  /** The batch dimension of the graph's inputs: a number, or null when dynamic. */
  batch?: number | null;
}

type Metadata = ort.InferenceSession.ValueMetadata;

const shapeText = (shape: ReadonlyArray<number | string>) => `[${shape.join(',')}]`;

/** A declared input or output against its rule; the problems, and the batch it declares. */
function compare(kind: 'input' | 'output', meta: Metadata, rule: TensorRule): { problems: string[]; batch?: number | null } {
  if (!meta.isTensor) return { problems: [`${kind} '${meta.name}' is not a tensor`] };
  const problems: string[] = [];
  if (!(rule.dtypes as readonly string[]).includes(meta.type)) problems.push(`${kind} '${meta.name}' is ${meta.type}; the worker ${kind === 'input' ? 'feeds' : 'reads'} ${rule.dtypes.join(' or ')}`);
  if (meta.shape.length !== rule.shape.length) {
    problems.push(`${kind} '${meta.name}' has shape ${shapeText(meta.shape)}; the contract is ${shapeText(rule.shape)}`);
    return { problems };
  }
  let batch: number | null | undefined;
  rule.shape.forEach((want, i) => {
    const got = meta.shape[i]!;
    if (want === 'batch') batch = typeof got === 'number' && got > 0 ? got : null;
    else if (typeof got === 'number' && got !== want) problems.push(`${kind} '${meta.name}' has shape ${shapeText(meta.shape)}; the contract is ${shapeText(rule.shape)}`);
  });
  return { problems: [...new Set(problems)], batch };
}

function zeros(rule: TensorRule, type: ort.Tensor.Type, batch: number): ort.Tensor {
  const dims = rule.shape.map((d) => (d === 'batch' ? batch : d));
  const size = dims.reduce((a, b) => a * b, 1);
  if (type === 'int64') return new ort.Tensor('int64', new BigInt64Array(size), dims);
  if (type === 'float16') return new ort.Tensor('float16', new Uint16Array(size), dims);
  return new ort.Tensor('float32', new Float32Array(size), dims);
}

/** Whether every value of a float32 or float16 tensor is finite. */
function allFinite(tensor: ort.Tensor): boolean {
  if (tensor.type === 'float16') return (tensor.data as Uint16Array).every((h) => (h & 0x7c00) !== 0x7c00);
  return (tensor.data as Float32Array).every(Number.isFinite);
}

async function checkNetwork(dir: string, rule: NetworkRule): Promise<Verdict> {
  const verdict = (ok: boolean, detail: string, notes: string[] = [], batch?: number | null): Verdict => ({ file: rule.file, ok, detail, notes, batch });
  const file = path.join(dir, rule.file);
  if (!existsSync(file)) return verdict(false, 'missing');
  let session: ort.InferenceSession;
  try {
    session = await ort.InferenceSession.create(file, { executionProviders: ['cpu'], logSeverityLevel: 3, graphOptimizationLevel: 'basic' });
  } catch (error) {
    return verdict(false, `onnxruntime cannot open it: ${firstLine(error)}`);
  }
  try {
    const problems: string[] = [];
    const notes: string[] = [];
    const batches = new Set<number | null>();
    const inputs = session.inputMetadata;
    for (const want of rule.inputs) {
      const meta = inputs.find((m) => m.name === want.name);
      if (!meta) {
        problems.push(`no input named '${want.name}' (the graph's inputs: ${inputs.map((m) => m.name).join(', ') || 'none'})`);
        continue;
      }
      const found = compare('input', meta, want);
      problems.push(...found.problems);
      if (found.batch !== undefined) batches.add(found.batch);
    }
    for (const extra of inputs.filter((m) => !rule.inputs.some((r) => r.name === m.name))) {
      problems.push(`input '${extra.name}' is not in the contract: the worker does not feed it, so every run would fail`);
    }
    if (batches.size > 1) problems.push(`inputs disagree on the batch dimension (${[...batches].map((b) => b ?? 'dynamic').join(' vs ')})`);
    const first = session.outputMetadata[0];
    if (!first) problems.push('the graph has no output');
    else {
      problems.push(...compare('output', first, rule.output).problems);
      if (first.name !== rule.output.name) notes.push(`first output is named '${first.name}', not '${rule.output.name}' (the worker reads the first output whatever its name)`);
    }
    if (problems.length > 0) return verdict(false, problems.join('; '));

    // Declared right; now one run on zeros, as the worker's warm-up does, with its batch.
    const batch = [...batches][0] ?? null;
    const runBatch = batch ?? 1;
    const feeds: Record<string, ort.Tensor> = {};
    for (const want of rule.inputs) {
      const meta = inputs.find((m) => m.name === want.name)!;
      feeds[want.name] = zeros(want, meta.isTensor ? meta.type : 'float32', runBatch);
    }
    const started = performance.now();
    let output: ort.Tensor;
    try {
      output = (await session.run(feeds))[first!.name]!;
    } catch (error) {
      return verdict(false, `declared right, but a run on zeros failed: ${firstLine(error)}`, notes, batch);
    }
    const ms = Math.round(performance.now() - started);
    const want = rule.output.shape.map((d) => (d === 'batch' ? runBatch : d));
    if (shapeText(output.dims) !== shapeText(want)) {
      return verdict(false, `a run with batch ${runBatch} gave '${first!.name}' ${shapeText(output.dims)}; the contract is ${shapeText(want)}`, notes, batch);
    }
    if (!allFinite(output)) return verdict(false, `a run on zeros gave NaN or infinite values in '${first!.name}'`, notes, batch);
    const described = (m: Metadata) => (m.isTensor ? `${m.name} ${m.type} ${shapeText(m.shape)}` : m.name);
    return verdict(true, `${inputs.map(described).join(', ')} -> ${described(first!)}; batch ${batch ?? 'dynamic'}; ran on zeros in ${ms} ms`, notes, batch);
  } finally {
    await session.release();
  }
}

/** metadata.json: valid JSON, `dev` a boolean if given, a `version`, and per-file batch sizes that agree with the graphs. */
function checkMetadata(dir: string, networks: readonly Verdict[]): Verdict {
  const file = path.join(dir, 'metadata.json');
  const verdict = (ok: boolean, detail: string, notes: string[] = []): Verdict => ({ file: 'metadata.json', ok, detail, notes });
  if (!existsSync(file)) return verdict(false, 'missing (the worker reads it first and will not start without it)');
  let meta: unknown;
  try {
    meta = JSON.parse(readFileSync(file, 'utf8'));
  } catch (error) {
    return verdict(false, `not valid JSON: ${errorMessage(error)}`);
  }
  if (typeof meta !== 'object' || meta === null || Array.isArray(meta)) return verdict(false, 'not a JSON object');
  const m = meta as Record<string, unknown>;
  const problems: string[] = [];
  const notes: string[] = [];
  if (m.dev !== undefined && typeof m.dev !== 'boolean') problems.push(`"dev" is ${JSON.stringify(m.dev)}; it must be true, false or absent`);
  if (typeof m.version !== 'string' || m.version === '') {
    notes.push('no "version": bundles are keyed by a hash of metadata.json, which does not change when only the weights do');
  }
  if (m.batchSizes !== undefined) {
    const sizes = m.batchSizes as Record<string, unknown>;
    for (const network of networks.filter((n) => n.batch !== undefined)) {
      const said = sizes?.[network.file];
      if (said !== undefined && said !== network.batch) problems.push(`batchSizes says ${JSON.stringify(said)} for ${network.file}, whose graph has ${network.batch ?? 'a dynamic batch (null)'}`);
    }
  }
  if (problems.length > 0) return verdict(false, problems.join('; '), notes);
  return verdict(true, `${m.dev === true ? 'a dev set (generated weights)' : 'a real set'}, version ${typeof m.version === 'string' && m.version ? m.version : '(none)'}`, notes);
}

/** Every file's verdict: the four networks, then metadata.json. */
export async function checkModelSet(dir: string): Promise<Verdict[]> {
  const networks: Verdict[] = [];
  for (const rule of MUSETALK_CONTRACT) networks.push(await checkNetwork(dir, rule));
  return [...networks, checkMetadata(dir, networks)];
}
