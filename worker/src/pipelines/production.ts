import type { PipelineSet } from './pipeline';

/**
 * The pipelines this image carries. The MuseTalk `lipsync` and `avatar.prepare` pipelines are not
 * built yet, so a worker started from this build refuses to start ("no pipeline for any job kind")
 * rather than take jobs it cannot run.
 */
export const productionPipelines: PipelineSet = {
  handlers: {},
  async load(models) {
    return { executionProvider: models.executionProvider, models: [...models.models] };
  },
};
