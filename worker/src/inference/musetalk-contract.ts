/** The model contract shared by the runtime (musetalk.ts), the dev set generator and models:check; no onnxruntime here. */
import type { DType } from './onnx-writer';

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

/** A fixed size, or the batch dimension (fixed or dynamic, the same in all of a file's inputs). */
type Dim = number | 'batch';

export interface TensorRule {
  name: string;
  dtypes: readonly DType[];
  shape: readonly Dim[];
}

export interface NetworkRule {
  file: string;
  inputs: readonly TensorRule[];
  /** The first output (the only one the worker reads). */
  output: TensorRule;
}

const FLOAT: readonly DType[] = ['float32', 'float16'];

/** Each network's inputs (fed by name) and first output, as musetalk.ts uses them; npm run models:check checks a folder against it. */
export const MUSETALK_CONTRACT: readonly NetworkRule[] = [
  {
    file: MUSETALK_FILES.unet,
    inputs: [
      { name: 'latent', dtypes: FLOAT, shape: ['batch', 8, 32, 32] },
      { name: 'timestep', dtypes: ['int64'], shape: [1] },
      { name: 'audio_prompt', dtypes: FLOAT, shape: ['batch', 50, 384] },
    ],
    output: { name: 'latent_out', dtypes: FLOAT, shape: ['batch', 4, 32, 32] },
  },
  {
    file: MUSETALK_FILES.vaeEncoder,
    inputs: [{ name: 'image', dtypes: FLOAT, shape: ['batch', 3, 256, 256] }],
    output: { name: 'moments', dtypes: FLOAT, shape: ['batch', 8, 32, 32] },
  },
  {
    file: MUSETALK_FILES.vaeDecoder,
    inputs: [{ name: 'latent', dtypes: FLOAT, shape: ['batch', 4, 32, 32] }],
    output: { name: 'image', dtypes: FLOAT, shape: ['batch', 3, 256, 256] },
  },
  {
    file: MUSETALK_FILES.whisper,
    inputs: [{ name: 'input_features', dtypes: FLOAT, shape: ['batch', 80, 3000] }],
    output: { name: 'hidden_states', dtypes: FLOAT, shape: ['batch', 1500, 5, 384] },
  },
];
