/** The model contract shared by the runtime (musetalk.ts) and the dev set generator; no onnxruntime here. */

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
