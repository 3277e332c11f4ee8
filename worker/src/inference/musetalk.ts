import { createHash } from 'node:crypto';
import * as ort from 'onnxruntime-node';
import type { Logger } from '../runtime/logger';
import { fromHalfArray, toHalfArray } from './float16';
import type { ModelLoader } from './model-loader';

/** MuseTalk 1.5 exported to ONNX, one file per network (see ARCHITECTURE.md, "Models"). */
export const MUSETALK_FOLDER = 'musetalk';
export const MUSETALK_FILES = {
  unet: 'musetalk_unet.onnx',
  vaeEncoder: 'musetalk_vae_encoder.onnx',
  vaeDecoder: 'musetalk_vae_decoder.onnx',
  whisper: 'musetalk_whisper_encoder.onnx',
} as const;
/** VAE latents are scaled by this before the UNet (the decoder export has the inverse folded in). */
export const VAE_SCALE = 0.18215;

const LATENT = 8 * 32 * 32;
const LATENT_OUT = 4 * 32 * 32;
const IMAGE = 3 * 256 * 256;
const AUDIO_PROMPT = 50 * 384;
const MEL = 80 * 3000;
const HIDDEN = 1500 * 5 * 384;

/**
 * One network: its input types come from the model itself (fp32 or fp16, as exported), and a fixed
 * batch dimension is honoured by padding the last batch and dropping the padding from the output.
 */
class Net {
  readonly fixedBatch?: number;

  constructor(
    private readonly session: ort.InferenceSession,
    private readonly name: string,
  ) {
    const meta = session.inputMetadata[0];
    const dim = meta && meta.isTensor ? meta.shape[0] : undefined;
    this.fixedBatch = typeof dim === 'number' && dim > 0 ? dim : undefined;
  }

  private typeOf(input: string): ort.Tensor.Type {
    const meta = this.session.inputMetadata.find((m) => m.name === input);
    return meta && meta.isTensor ? meta.type : 'float32';
  }

  /** Runs `n` items whose per-item inputs are `sizes` long; returns the first output, `outSize` per item, as float32. */
  async run(n: number, inputs: Record<string, { data: Float32Array; size: number; shape: number[] }>, outSize: number, extra: Record<string, ort.Tensor> = {}): Promise<Float32Array> {
    const step = this.fixedBatch ?? n;
    if (step === n) return this.runWhole(n, inputs, outSize, extra);
    const out = new Float32Array(n * outSize);
    for (let start = 0; start < n; start += step) {
      const count = Math.min(step, n - start);
      const batch = this.fixedBatch ?? count;
      const feeds: Record<string, ort.Tensor> = { ...extra };
      for (const [name, input] of Object.entries(inputs)) {
        const slice = new Float32Array(batch * input.size);
        slice.set(input.data.subarray(start * input.size, (start + count) * input.size));
        feeds[name] = this.typeOf(name) === 'float16'
          ? new ort.Tensor('float16', toHalfArray(slice), [batch, ...input.shape])
          : new ort.Tensor('float32', slice, [batch, ...input.shape]);
      }
      const results = await this.session.run(feeds);
      const first = results[this.session.outputNames[0]!];
      if (!first) throw new Error(`${this.name}: no output`);
      const data = first.type === 'float16' ? fromHalfArray(first.data as Uint16Array) : (first.data as Float32Array);
      out.set(data.subarray(0, count * outSize), start * outSize);
    }
    return out;
  }

  /**
   * The common case, one call with exactly the model's batch: inputs go in and the output comes out
   * without copies (a frame batch is megabytes, and copies were a large share of the garbage).
   */
  private async runWhole(n: number, inputs: Record<string, { data: Float32Array; size: number; shape: number[] }>, outSize: number, extra: Record<string, ort.Tensor>): Promise<Float32Array> {
    const feeds: Record<string, ort.Tensor> = { ...extra };
    for (const [name, input] of Object.entries(inputs)) {
      const data = input.data.length === n * input.size ? input.data : input.data.subarray(0, n * input.size);
      feeds[name] = this.typeOf(name) === 'float16'
        ? new ort.Tensor('float16', toHalfArray(data), [n, ...input.shape])
        : new ort.Tensor('float32', data, [n, ...input.shape]);
    }
    const results = await this.session.run(feeds);
    const first = results[this.session.outputNames[0]!];
    if (!first) throw new Error(`${this.name}: no output`);
    const data = first.type === 'float16' ? fromHalfArray(first.data as Uint16Array) : (first.data as Float32Array);
    return data.length === n * outSize ? data : data.subarray(0, n * outSize);
  }
}

/** What the pipelines need from the networks (a benchmark can stand in for them). */
export interface MuseTalkNetworks {
  readonly version: string;
  readonly batchSize: number;
  vaeEncode(images: Float32Array, n: number): Promise<Float32Array>;
  unet(latents: Float32Array, audio: Float32Array, n: number): Promise<Float32Array>;
  vaeDecode(latents: Float32Array, n: number): Promise<Float32Array>;
  whisper(mel: Float32Array): Promise<Float32Array>;
}

/** The four MuseTalk networks, loaded once per worker and warmed before it reports ready. */
export class MuseTalkModels implements MuseTalkNetworks {
  private constructor(
    private readonly unetNet: Net,
    private readonly encoderNet: Net,
    private readonly decoderNet: Net,
    private readonly whisperNet: Net,
    /** Identifies the weights, so avatar bundles made with other weights are rebuilt. */
    readonly version: string,
    readonly dev: boolean,
  ) {}

  /** Frames per UNet/VAE call: the export's fixed batch, else 8. */
  get batchSize(): number {
    return this.unetNet.fixedBatch ?? 8;
  }

  static async load(loader: ModelLoader, log: Logger): Promise<MuseTalkModels> {
    const meta = loader.metadata(MUSETALK_FOLDER);
    const open = async (file: string) => new Net(await loader.session(`${MUSETALK_FOLDER}/${file}`), file);
    const models = new MuseTalkModels(
      await open(MUSETALK_FILES.unet),
      await open(MUSETALK_FILES.vaeEncoder),
      await open(MUSETALK_FILES.vaeDecoder),
      await open(MUSETALK_FILES.whisper),
      String(meta.version ?? createHash('sha1').update(JSON.stringify(meta)).digest('hex').slice(0, 12)),
      meta.dev === true,
    );
    const started = Date.now();
    await models.warmUp();
    log.info('musetalk models warmed', { ms: Date.now() - started, precision: String(meta.precision ?? 'unknown'), batch: models.batchSize, dev: models.dev });
    return models;
  }

  /** One call of each network, so the first job does not pay for lazy initialisation (CUDA kernels, arenas). */
  private async warmUp(): Promise<void> {
    const n = this.batchSize;
    const latents = await this.vaeEncode(new Float32Array(n * IMAGE), n);
    const out = await this.unet(latents, new Float32Array(n * AUDIO_PROMPT), n);
    await this.vaeDecode(out, n);
    await this.whisper(new Float32Array(MEL));
  }

  /** images [n,3,256,256] in [-1,1] -> VAE moments [n,8,32,32]. */
  vaeEncode(images: Float32Array, n: number): Promise<Float32Array> {
    return this.encoderNet.run(n, { image: { data: images, size: IMAGE, shape: [3, 256, 256] } }, LATENT);
  }

  /** latents [n,8,32,32] + audio prompts [n,50,384] -> [n,4,32,32]. */
  unet(latents: Float32Array, audio: Float32Array, n: number): Promise<Float32Array> {
    return this.unetNet.run(
      n,
      { latent: { data: latents, size: LATENT, shape: [8, 32, 32] }, audio_prompt: { data: audio, size: AUDIO_PROMPT, shape: [50, 384] } },
      LATENT_OUT,
      { timestep: new ort.Tensor('int64', BigInt64Array.from([0n]), [1]) },
    );
  }

  /** latents [n,4,32,32] -> images [n,3,256,256] in [-1,1]. */
  vaeDecode(latents: Float32Array, n: number): Promise<Float32Array> {
    return this.decoderNet.run(n, { latent: { data: latents, size: LATENT_OUT, shape: [4, 32, 32] } }, IMAGE);
  }

  /** One 30 s log-mel window [80,3000] -> hidden states [1500,5,384]. */
  whisper(mel: Float32Array): Promise<Float32Array> {
    return this.whisperNet.run(1, { input_features: { data: mel, size: MEL, shape: [80, 3000] } }, HIDDEN);
  }
}
