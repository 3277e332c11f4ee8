import { BLAZEFACE_MODEL_PATH, FaceDetector } from '../inference/face-detector';
import { MuseTalkModels } from '../inference/musetalk';
import { prepareAvatar, prepareResult, type PrepareModels } from './avatar-prepare/prepare-avatar';
import { lipsync } from './lipsync/lipsync';
import type { PipelineSet } from './pipeline';

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
    async load(loader, log) {
      const musetalk = await MuseTalkModels.load(loader, log);
      const faces = new FaceDetector(await loader.bundledSession(BLAZEFACE_MODEL_PATH, 'blazeface/face_detection_front_128x128'));
      models = { musetalk, faces };
      return { executionProvider: loader.executionProvider, models: [...loader.models] };
    },
  };
}
