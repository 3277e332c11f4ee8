import { createHash } from 'node:crypto';
import { mkdir, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { onnx } from 'onnx-proto';
import { mulberry32 } from '@avatar-fleet/contracts';
import { attr, dataTypeOf, encodeModel, floatInitializer, int64Initializer, IR_VERSION, node, OPSET, valueInfo, type Attribute, type Dim, type DType } from './onnx-writer';
import { MUSETALK_FILES, VAE_SCALE } from './musetalk-contract';

/**
 * The DEV model set: a generated stand-in for the MuseTalk 1.5 ONNX export with exactly its file
 * names, tensor names, dtypes and shapes, and seeded random weights, so the whole lip-sync pipeline
 * runs anywhere (tests, `npm start`) without the private weights. Its metadata.json says
 * `"dev": true`, which the model loader refuses under REQUIRE_REAL_MODELS=true.
 *
 * The graphs are real but cheap computations, and shaped so a dev run is visually traceable: the
 * VAE encoder is roughly an 8×8 average pool of RGB, the decoder roughly a blurred ×8 upsample, and
 * the UNet returns the reference latent plus a perturbation driven by the masked latent and the
 * audio. So a dev video shows the avatar's own (blocky) face with an audio-driven tint, not noise.
 *
 * fp16: every tensor that the contract types f32/f16 is float16 at the graph boundary (UNet latent,
 * audio_prompt, latent_out; VAE image/moments/latent; whisper hidden_states); `timestep` stays int64
 * and whisper `input_features` stays float32 (the log-mel is computed in f32). Weights are stored
 * as float16. onnxruntime's CPU provider has no float16 kernels for Conv/ConvTranspose, so the
 * graphs Cast to float32 at the entry, compute in float32, and Cast back at the exit; the weight
 * Casts are constant-folded when the session is created. Real fp16 exports compute in f16 on CUDA.
 */

export type DevPrecision = 'fp32' | 'fp16';

export interface DevModelSetOptions {
  precision?: DevPrecision;
  /** Batch dimension of the UNet and VAE graphs; default 8, `null` for a dynamic (symbolic) batch. */
  batchSize?: number | null;
  /** PRNG seed for the weights; default 1. Same options → byte-identical files. */
  seed?: number;
}

export interface DevModelFile {
  name: string;
  path: string;
  bytes: number;
  sha256: string;
}

export interface DevModelSetReport {
  /** The folder written (the `musetalk/` folder itself). */
  dir: string;
  precision: DevPrecision;
  batchSize: number | null;
  seed: number;
  files: DevModelFile[];
  metadata: DevModelMetadata;
}

export interface TensorSpec {
  dtype: DType;
  shape: Dim[];
}

export interface DevModelMetadata {
  format: 'onnx';
  opset: number;
  irVersion: number;
  precision: DevPrecision;
  /** UNet/VAE batch dimension; null = dynamic. */
  batchSize: number | null;
  /** Per-graph batch dimension; whisper is always dynamic (one 30 s window per batch row). */
  batchSizes: Record<string, number | null>;
  dev: true;
  generator: 'avatar-fleet models:dev';
  /**
   * Identifies the weights (`dev<generatorVersion>-<sha256 of the four .onnx files>`), so anything
   * cached from one set (e.g. avatar latents) is rebuilt when the seed, precision or graphs change.
   */
  version: string;
  generatorVersion: number;
  seed: number;
  vaeScalingFactor: number;
  /** Per file: inputs and outputs by name, with dtype and shape (strings are dynamic dims). */
  models: Record<string, { inputs: Record<string, TensorSpec>; outputs: Record<string, TensorSpec> }>;
  notes: string;
}

/** Bump when the generated graphs change, so a stale dev set can be told apart. */
export const DEV_MODEL_VERSION = 1;
export const DEV_GENERATOR = 'avatar-fleet models:dev';

const WHISPER_FRAMES = 3000;
const WHISPER_POSITIONS = 1500;
const WHISPER_LAYERS = 5;
const WHISPER_WIDTH = 384;
const AUDIO_WINDOW = 50;

/** Seeded weights: uniform numbers from mulberry32, normals from them. */
class Rng {
  readonly uniform: () => number;
  constructor(seed: number) {
    this.uniform = mulberry32(seed);
  }
  /** Standard normal (Box–Muller; V8's Math.log/cos are fdlibm ports, so identical everywhere). */
  normal(): number {
    const u = 1 - this.uniform();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * this.uniform());
  }
  normals(count: number, std: number): Float32Array {
    const out = new Float32Array(count);
    for (let i = 0; i < count; i++) out[i] = this.normal() * std;
    return out;
  }
}

/**
 * Builds one graph under a precision policy: boundary tensors in the I/O dtype with Casts to
 * float32 inside, weights stored in the weight dtype and Cast to float32 where needed.
 */
class GraphBuilder {
  readonly nodes: onnx.INodeProto[] = [];
  readonly initializers: onnx.ITensorProto[] = [];
  readonly inputs: onnx.IValueInfoProto[] = [];
  readonly outputs: onnx.IValueInfoProto[] = [];
  readonly io: { inputs: Record<string, TensorSpec>; outputs: Record<string, TensorSpec> } = { inputs: {}, outputs: {} };
  private counter = 0;

  constructor(private readonly fp16: boolean) {}

  private fresh(hint: string): string {
    return `${hint}_${this.counter++}`;
  }

  op(opType: string, inputs: readonly string[], attributes: Record<string, Attribute> = {}): string {
    const out = this.fresh(opType.toLowerCase());
    this.nodes.push(node(opType, inputs, [out], attributes));
    return out;
  }

  /** A float graph input: float16 in an fp16 set unless `keepF32`; returns a float32 tensor name. */
  floatInput(name: string, shape: Dim[], keepF32 = false): string {
    const dtype: DType = this.fp16 && !keepF32 ? 'float16' : 'float32';
    this.inputs.push(valueInfo(name, dtype, shape));
    this.io.inputs[name] = { dtype, shape };
    return dtype === 'float16' ? this.op('Cast', [name], { to: attr.int(dataTypeOf('float32')) }) : name;
  }

  int64Input(name: string, shape: Dim[]): string {
    this.inputs.push(valueInfo(name, 'int64', shape));
    this.io.inputs[name] = { dtype: 'int64', shape };
    return name;
  }

  /** Makes float32 tensor `value` the graph output `name` (Cast to float16 in an fp16 set). */
  floatOutput(value: string, name: string, shape: Dim[]): void {
    const dtype: DType = this.fp16 ? 'float16' : 'float32';
    this.nodes.push(this.fp16 ? node('Cast', [value], [name], { to: attr.int(dataTypeOf('float16')) }) : node('Identity', [value], [name]));
    this.outputs.push(valueInfo(name, dtype, shape));
    this.io.outputs[name] = { dtype, shape };
  }

  /** A float weight as a float32 tensor name (stored float16 + Cast in an fp16 set). */
  weight(name: string, values: Float32Array, dims: number[]): string {
    this.initializers.push(floatInitializer(name, values, dims, this.fp16 ? 'float16' : 'float32'));
    return this.fp16 ? this.op('Cast', [name], { to: attr.int(dataTypeOf('float32')) }) : name;
  }

  ints(name: string, values: number[]): string {
    this.initializers.push(int64Initializer(name, values));
    return name;
  }

  encode(graphName: string, docString: string, meta: Record<string, string>): Buffer {
    return encodeModel({
      graphName,
      nodes: this.nodes,
      inputs: this.inputs,
      outputs: this.outputs,
      initializers: this.initializers,
      producerName: DEV_GENERATOR,
      producerVersion: String(DEV_MODEL_VERSION),
      docString,
      metadata: meta,
    });
  }
}

/** Conv weight [out, in, k, k]: `identity(o, i)` (per tap) where given, plus N(0, noise). */
function convWeight(rng: Rng, out: number, inp: number, k: number, noise: number, identity?: (o: number, i: number, y: number, x: number) => number): Float32Array {
  const w = rng.normals(out * inp * k * k, noise);
  if (identity) {
    for (let o = 0; o < out; o++)
      for (let i = 0; i < inp; i++)
        for (let y = 0; y < k; y++) for (let x = 0; x < k; x++) w[((o * inp + i) * k + y) * k + x]! += identity(o, i, y, x);
  }
  return w;
}

const konst = (b: GraphBuilder, name: string, value: number) => b.weight(name, Float32Array.of(value), [1]);

/** UNet: latent [B,8,32,32] (masked ‖ reference), timestep [1], audio_prompt [B,50,384] → latent_out [B,4,32,32]. */
function buildUnet(b: GraphBuilder, rng: Rng, batch: Dim): void {
  const latent = b.floatInput('latent', [batch, 8, 32, 32]);
  const timestep = b.int64Input('timestep', [1]);
  const audio = b.floatInput('audio_prompt', [batch, AUDIO_WINDOW, WHISPER_WIDTH]);
  const hidden = 16;
  const w1 = b.weight('unet.conv_in.weight', convWeight(rng, hidden, 8, 3, Math.sqrt(2 / (8 * 9))), [hidden, 8, 3, 3]);
  const b1 = b.weight('unet.conv_in.bias', rng.normals(hidden, 0.05), [hidden]);
  const h = b.op('Conv', [latent, w1, b1], { kernel_shape: attr.ints([3, 3]), pads: attr.ints([1, 1, 1, 1]) });
  // Audio conditioning: the window's mean feature projected to one bias per hidden channel.
  const mean = b.op('ReduceMean', [audio], { axes: attr.ints([1]), keepdims: attr.int(0) });
  const wa = b.weight('unet.audio_proj.weight', rng.normals(WHISPER_WIDTH * hidden, 3 / Math.sqrt(WHISPER_WIDTH)), [WHISPER_WIDTH, hidden]);
  const a = b.op('Unsqueeze', [b.op('MatMul', [mean, wa]), b.ints('unet.axes_hw', [2, 3])]);
  // timestep is always 0 in MuseTalk; it is used (×0) so it stays a real, required graph input.
  const t = b.op('Mul', [b.op('Cast', [timestep], { to: attr.int(dataTypeOf('float32')) }), konst(b, 'unet.timestep_scale', 0)]);
  const z = b.op('Tanh', [b.op('Add', [b.op('Add', [h, a]), t])]);
  const w2 = b.weight('unet.conv_out.weight', convWeight(rng, 4, hidden, 3, 0.03), [4, hidden, 3, 3]);
  const b2 = b.weight('unet.conv_out.bias', rng.normals(4, 0.01), [4]);
  const delta = b.op('Conv', [z, w2, b2], { kernel_shape: attr.ints([3, 3]), pads: attr.ints([1, 1, 1, 1]) });
  const ref = b.op('Slice', [latent, b.ints('unet.ref_start', [4]), b.ints('unet.ref_end', [8]), b.ints('unet.ref_axis', [1])]);
  b.floatOutput(b.op('Add', [ref, delta]), 'latent_out', [batch, 4, 32, 32]);
}

/** VAE encoder: image [B,3,256,256] in [-1,1] → moments [B,8,32,32] (mean ‖ logvar). */
function buildVaeEncoder(b: GraphBuilder, rng: Rng, batch: Dim): void {
  const image = b.floatInput('image', [batch, 3, 256, 256]);
  // 8×8 patches: mean channels 0–2 ≈ average of R, G, B; channel 3 and the logvar channels random.
  const w = convWeight(rng, 8, 3, 8, 0.004, (o, i) => (o < 3 && o === i ? 1 / 64 : 0));
  const bias = rng.normals(8, 0.02);
  for (let o = 4; o < 8; o++) bias[o]! -= 4; // logvar ≈ -4, as a trained VAE's small posterior variance
  const p = b.op('Conv', [image, b.weight('vae.encoder.patch.weight', w, [8, 3, 8, 8]), b.weight('vae.encoder.patch.bias', bias, [8])], {
    kernel_shape: attr.ints([8, 8]),
    strides: attr.ints([8, 8]),
  });
  // A mild saturating term keeps the map non-linear without moving values far.
  const moments = b.op('Add', [p, b.op('Mul', [b.op('Tanh', [p]), konst(b, 'vae.encoder.tanh_gain', 0.1)])]);
  b.floatOutput(moments, 'moments', [batch, 8, 32, 32]);
}

/** VAE decoder: latent [B,4,32,32] (×0.18215 applied by the caller; undone here) → image [B,3,256,256] in [-1,1]. */
function buildVaeDecoder(b: GraphBuilder, rng: Rng, batch: Dim): void {
  const latent = b.floatInput('latent', [batch, 4, 32, 32]);
  const unscaled = b.op('Mul', [latent, konst(b, 'vae.decoder.inv_scaling', 1 / VAE_SCALE)]);
  // ConvTranspose weight is [in, out, k, k]: ≈ nearest ×8 upsample of channels 0–2.
  const up = convWeight(rng, 4, 3, 8, 0.004, (i, o) => (i < 3 && i === o ? 1 : 0));
  const x = b.op('ConvTranspose', [unscaled, b.weight('vae.decoder.up.weight', up, [4, 3, 8, 8]), b.weight('vae.decoder.up.bias', rng.normals(3, 0.01), [3])], {
    kernel_shape: attr.ints([8, 8]),
    strides: attr.ints([8, 8]),
  });
  // A 3×3 binomial blur per channel (plus noise) softens the 8×8 blocks.
  const blur = [1, 2, 1];
  const smooth = convWeight(rng, 3, 3, 3, 0.01, (o, i, y, xx) => (o === i ? (blur[y]! * blur[xx]!) / 16 : 0));
  const y = b.op('Conv', [x, b.weight('vae.decoder.smooth.weight', smooth, [3, 3, 3, 3]), b.weight('vae.decoder.smooth.bias', new Float32Array(3), [3])], {
    kernel_shape: attr.ints([3, 3]),
    pads: attr.ints([1, 1, 1, 1]),
  });
  // onnxruntime's CPU Tanh (MLAS approximation) overshoots ±1 by one ulp for large inputs; the Clip
  // makes the [-1, 1] contract exact.
  const clipped = b.op('Clip', [b.op('Tanh', [y]), konst(b, 'vae.decoder.min', -1), konst(b, 'vae.decoder.max', 1)]);
  b.floatOutput(clipped, 'image', [batch, 3, 256, 256]);
}

/** Whisper encoder: input_features [B,80,3000] → hidden_states [B,1500,5,384] via one stride-2 Conv1d. */
function buildWhisper(b: GraphBuilder, rng: Rng, batch: Dim): void {
  const mel = b.floatInput('input_features', [batch, 80, WHISPER_FRAMES], true);
  const channels = WHISPER_LAYERS * WHISPER_WIDTH;
  const w = b.weight('whisper.conv.weight', rng.normals(channels * 80 * 3, 1.5 / Math.sqrt(80 * 3)), [channels, 80, 3]);
  const conv = b.op('Conv', [mel, w, b.weight('whisper.conv.bias', rng.normals(channels, 0.1), [channels])], {
    kernel_shape: attr.ints([3]),
    strides: attr.ints([2]),
    pads: attr.ints([1, 1]),
  });
  const seq = b.op('Transpose', [b.op('Tanh', [conv])], { perm: attr.ints([0, 2, 1]) });
  // Reshape dim 0 = "copy the batch", so the same graph serves any batch.
  const out = b.op('Reshape', [seq, b.ints('whisper.hidden_shape', [0, WHISPER_POSITIONS, WHISPER_LAYERS, WHISPER_WIDTH])]);
  b.floatOutput(out, 'hidden_states', [batch, WHISPER_POSITIONS, WHISPER_LAYERS, WHISPER_WIDTH]);
}

const GRAPHS: { file: string; graph: string; salt: number; build: (b: GraphBuilder, rng: Rng, batch: Dim) => void; doc: string }[] = [
  { file: MUSETALK_FILES.unet, graph: 'musetalk_unet_dev', salt: 1, build: buildUnet, doc: 'DEV stand-in for the MuseTalk 1.5 UNet (random weights)' },
  { file: MUSETALK_FILES.vaeEncoder, graph: 'musetalk_vae_encoder_dev', salt: 2, build: buildVaeEncoder, doc: 'DEV stand-in for the sd-vae encoder (random weights)' },
  { file: MUSETALK_FILES.vaeDecoder, graph: 'musetalk_vae_decoder_dev', salt: 3, build: buildVaeDecoder, doc: 'DEV stand-in for the sd-vae decoder (random weights)' },
  { file: MUSETALK_FILES.whisper, graph: 'musetalk_whisper_encoder_dev', salt: 4, build: buildWhisper, doc: 'DEV stand-in for the whisper-tiny encoder (random weights)' },
];

export function resolveDevOptions(options: DevModelSetOptions = {}): { precision: DevPrecision; batchSize: number | null; seed: number } {
  const precision = options.precision ?? 'fp32';
  if (precision !== 'fp32' && precision !== 'fp16') throw new Error(`dev models: precision must be fp32 or fp16, not ${String(precision)}`);
  const batchSize = options.batchSize === undefined ? 8 : options.batchSize;
  if (batchSize !== null && (!Number.isInteger(batchSize) || batchSize < 1 || batchSize > 1024)) {
    throw new Error(`dev models: batch size must be an integer from 1 to 1024 or null (dynamic), not ${batchSize}`);
  }
  const seed = options.seed ?? 1;
  if (!Number.isInteger(seed) || seed < 0 || seed > 0xffffffff) throw new Error(`dev models: seed must be an integer from 0 to 2^32-1, not ${seed}`);
  return { precision, batchSize, seed };
}

/**
 * Writes the four dev ONNX files and metadata.json into `dir` (the `musetalk/` folder itself).
 * Each file is written to a temporary name and renamed, and metadata.json last, so an interrupted
 * run never leaves a folder that looks complete.
 */
export async function writeDevModelSet(dir: string, options: DevModelSetOptions = {}): Promise<DevModelSetReport> {
  const { precision, batchSize, seed } = resolveDevOptions(options);
  const fp16 = precision === 'fp16';
  const batch: Dim = batchSize ?? 'batch';
  await mkdir(dir, { recursive: true });
  const models: DevModelMetadata['models'] = {};
  const batchSizes: Record<string, number | null> = {};
  const files: DevModelFile[] = [];
  const weightsHash = createHash('sha256');
  for (const g of GRAPHS) {
    const b = new GraphBuilder(fp16);
    // One stream per graph (seed mixed with a salt), so changing one graph leaves the others' weights alone.
    const rng = new Rng(Math.imul(seed ^ 0x9e3779b9, 0x85ebca6b) ^ g.salt);
    const isWhisper = g.file === MUSETALK_FILES.whisper;
    g.build(b, rng, isWhisper ? 'batch' : batch);
    const bytes = b.encode(g.graph, g.doc, { dev: 'true', precision, seed: String(seed), generator: DEV_GENERATOR, version: String(DEV_MODEL_VERSION) });
    files.push(await writeAtomically(dir, g.file, bytes));
    weightsHash.update(bytes);
    models[g.file] = b.io;
    batchSizes[g.file] = isWhisper ? null : batchSize;
  }
  const metadata: DevModelMetadata = {
    format: 'onnx',
    opset: OPSET,
    irVersion: IR_VERSION,
    precision,
    batchSize,
    batchSizes,
    dev: true,
    generator: DEV_GENERATOR,
    version: `dev${DEV_MODEL_VERSION}-${weightsHash.digest('hex').slice(0, 16)}`,
    generatorVersion: DEV_MODEL_VERSION,
    seed,
    vaeScalingFactor: VAE_SCALE,
    models,
    notes:
      'Generated stand-in with random weights: outputs are not lip-sync. ' +
      (fp16
        ? 'fp16: latent/image/audio_prompt/moments/latent_out/hidden_states are float16 (Uint16Array bits in onnxruntime-node on Node 20), timestep int64, input_features float32; compute runs in float32 inside (Casts).'
        : 'fp32: all float tensors float32, timestep int64.'),
  };
  const metaBytes = Buffer.from(JSON.stringify(metadata, null, 2) + '\n', 'utf8');
  files.push(await writeAtomically(dir, 'metadata.json', metaBytes));
  return { dir, precision, batchSize, seed, files, metadata };
}

async function writeAtomically(dir: string, name: string, bytes: Buffer): Promise<DevModelFile> {
  const file = path.join(dir, name);
  const temp = `${file}.${process.pid}.tmp`;
  await writeFile(temp, bytes);
  await rename(temp, file);
  return { name, path: file, bytes: bytes.length, sha256: createHash('sha256').update(bytes).digest('hex') };
}
