import { musetalkPipelines } from './musetalk-pipelines';
import type { PipelineSet } from './pipeline';

/** The pipelines the worker image runs: MuseTalk `avatar.prepare` and `lipsync`. */
export const productionPipelines: PipelineSet = musetalkPipelines();
