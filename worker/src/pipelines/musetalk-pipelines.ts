import { BLAZEFACE_MODEL_PATH, FaceDetector } from '../inference/face-detector';
import { FaceLandmarker } from '../inference/face-landmarks';
import { MuseTalkModels } from '../inference/musetalk';
import { prepareAvatar, prepareResult, type PrepareModels } from './avatar-prepare/prepare-avatar';
import { lipsync } from './lipsync/lipsync';
import type { PipelineOptions, PipelineSet } from './pipeline';
import type { ModelLoader } from '../inference/model-loader';
import type { Logger } from '../runtime/logger';
import { canEncode, type VideoCodec } from '../media/ffmpeg';

/**
 * The MuseTalk networks from MODEL_DIR, the bundled face detector and the landmark network (built
 * from the weights its npm package ships), loaded and warmed.
 */
export async function loadModels(loader: ModelLoader, log: Logger): Promise<PrepareModels> {
  const musetalk = await MuseTalkModels.load(loader, log);
  const faces = new FaceDetector(await loader.bundledSession(BLAZEFACE_MODEL_PATH, 'blazeface/face_detection_front_128x128'));
  const landmarks = new FaceLandmarker(await loader.builtSession(FaceLandmarker.modelBytes(), 'face-api/face_landmark_68'));
  return { musetalk, faces, landmarks };
}

/** NVENC where it works (a GPU with the driver's video capability and an ffmpeg built with it), else libx264. */
async function chooseCodec(wanted: PipelineOptions['videoEncoder']): Promise<VideoCodec> {
  if (wanted === 'libx264') return 'libx264';
  if (await canEncode('h264_nvenc')) return 'h264_nvenc';
  if (wanted === 'h264_nvenc') throw new Error('VIDEO_ENCODER=h264_nvenc but a test encode with it failed (no NVIDIA GPU, no video capability, or an ffmpeg without NVENC)');
  return 'libx264';
}

/**
 * The two job kinds the fleet exists for, on MuseTalk 1.5 (from MODEL_DIR/musetalk) and the
 * bundled BlazeFace detector. Models load once per worker; every slot shares them.
 */
export function musetalkPipelines(): PipelineSet {
  let models: PrepareModels | undefined;
  const loaded = (): PrepareModels => {
    if (!models) throw new Error('pipelines used before their models were loaded');
    return models;
  };
  return {
    handlers: {
      'avatar.prepare': async (input, ctx) => {
        const request = { avatarId: input.avatarId ?? `avatar-${ctx.job.id}`, source: input.source, fps: input.fps ?? 25, bboxShift: input.bboxShift ?? 0 };
        return prepareResult(await prepareAvatar(request, loaded(), ctx));
      },
      lipsync: (input, ctx) => lipsync(input, loaded(), ctx),
    },
    async load(loader, log, options = { videoEncoder: 'auto' }) {
      const videoCodec = await chooseCodec(options.videoEncoder);
      log.info('video encoder chosen', { codec: videoCodec });
      models = { ...(await loadModels(loader, log)), videoCodec };
      return { executionProvider: loader.executionProvider, models: [...loader.models] };
    },
  };
}
