import { createHash } from 'node:crypto';
import * as ort from 'onnxruntime-node';
import type { Logger } from '../runtime/logger';
import { fromHalfArray, toHalfArray } from './float16';
import type { ModelLoader } from './model-loader';
import { MUSETALK_FILES, MUSETALK_FOLDER } from './musetalk-contract';

export { MUSETALK_FILES, MUSETALK_FOLDER, VAE_SCALE } from './musetalk-contract';

const LATENT = 8 * 32 * 32;
const LATENT_OUT = 4 * 32 * 32;
const IMAGE = 3 * 256 * 256;
const AUDIO_PROMPT = 50 * 384;
const MEL = 80 * 3000;
const HIDDEN = 1500 * 5 * 384;

interface NetInput {
  data: Float32Array;
  size: number;
  shape: number[];
}

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

  /** Runs `n` items whose per-item inputs are `size` long; returns the first output, `outSize` per item, as float32. */
  async run(n: number, inputs: Record<string, NetInput>, outSize: number, extra: Record<string, ort.Tensor> = {}): Promise<Float32Array> {
    const step = this.fixedBatch ?? n;
    // The common case, exactly the model's batch in one call: no copies in or out (a frame batch
    // is megabytes, and copies were a large share of the garbage).
    if (step === n) return (await this.call(n, inputs, (input) => input.data.subarray(0, n * input.size), extra)).subarray(0, n * outSize);
    const out = new Float32Array(n * outSize);
    for (let start = 0; start < n; start += step) {
      const count = Math.min(step, n - start);
      // The last batch of a fixed-batch export is padded with zeros; the padding's output is dropped.
      const padded = (input: NetInput) => {
        const slice = new Float32Array(step * input.size);
        slice.set(input.data.subarray(start * input.size, (start + count) * input.size));
        return slice;
      };
      out.set((await this.call(step, inputs, padded, extra)).subarray(0, count * outSize), start * outSize);
    }
    return out;
  }

  /** One session run of `batch` items, each input's data chosen by `dataOf`, in the dtype the model declares. */
  private async call(batch: number, inputs: Record<string, NetInput>, dataOf: (input: NetInput) => Float32Array, extra: Record<string, ort.Tensor>): Promise<Float32Array> {
    const feeds: Record<string, ort.Tensor> = { ...extra };
    for (const [name, input] of Object.entries(inputs)) {
      const data = dataOf(input);
      feeds[name] = this.typeOf(name) === 'float16'
        ? new ort.Tensor('float16', toHalfArray(data), [batch, ...input.shape])
        : new ort.Tensor('float32', data, [batch, ...input.shape]);
    }
    const first = (await this.session.run(feeds))[this.session.outputNames[0]!];
    if (!first) throw new Error(`${this.name}: no output`);
    return first.type === 'float16' ? fromHalfArray(first.data as Uint16Array) : (first.data as Float32Array);
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
