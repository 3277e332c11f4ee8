import { existsSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as ort from 'onnxruntime-node';
import type { Logger } from '../runtime/logger';
import { errorMessage, firstLine } from '../runtime/logger';

export type ExecutionProviderChoice = 'auto' | 'tensorrt' | 'cuda' | 'cpu';

/** A model the worker cannot run with: missing, or a dev set where real models are required. */
export class ModelError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ModelError';
  }
}

export interface ModelLoaderOptions {
  modelDir: string;
  executionProvider: ExecutionProviderChoice;
  requireRealModels: boolean;
  log: Logger;
  /** Intra-op threads per session on the CPU provider (default: every core but one). */
  threads?: number;
}

/** onnxruntime's create, for a path or bytes alike (its overloads take one or the other). */
function create(model: string | Uint8Array, options: ort.InferenceSession.SessionOptions): Promise<ort.InferenceSession> {
  return typeof model === 'string' ? ort.InferenceSession.create(model, options) : ort.InferenceSession.create(model, options);
}

/**
 * Opens ONNX sessions from MODEL_DIR on one execution provider for the whole worker. `auto` tries
 * CUDA first, `tensorrt` TensorRT then CUDA: onnxruntime-node throws (rather than falling back)
 * when a provider's libraries are absent, so the fallback (ending on the CPU) is done here, once,
 * and reported.
 */
export class ModelLoader {
  private chosen: 'tensorrt' | 'cuda' | 'cpu' | undefined;
  private readonly opened: string[] = [];

  constructor(private readonly options: ModelLoaderOptions) {}

  /** The provider every session runs on; known after the first session opened. */
  get executionProvider(): string {
    return this.chosen ?? 'none';
  }

  get models(): readonly string[] {
    return this.opened;
  }

  /** Absolute path of a model file, which must exist. */
  resolve(relativePath: string): string {
    const file = path.resolve(this.options.modelDir, relativePath);
    if (!file.startsWith(path.resolve(this.options.modelDir) + path.sep)) throw new ModelError(`model path ${relativePath} leaves MODEL_DIR`);
    if (!existsSync(file)) throw new ModelError(`model ${relativePath} is missing from MODEL_DIR (${this.options.modelDir})`);
    return file;
  }

  /**
   * Reads a model folder's metadata.json; a set marked `"dev": true` (generated, not trained) is
   * refused when REQUIRE_REAL_MODELS=true, so such a worker never ships outputs of generated weights.
   */
  metadata(folder: string): Record<string, unknown> {
    const file = this.resolve(path.join(folder, 'metadata.json'));
    let meta: Record<string, unknown>;
    try {
      meta = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
    } catch (error) {
      throw new ModelError(`${folder}/metadata.json is not valid JSON: ${errorMessage(error)}`);
    }
    if (meta.dev === true && this.options.requireRealModels) {
      throw new ModelError(`${folder} is a dev model set (generated weights) and REQUIRE_REAL_MODELS=true; sync the real models into MODEL_DIR`);
    }
    if (meta.dev === true) this.options.log.warn('running on a dev model set: outputs are not real lip-sync', { models: folder });
    return meta;
  }

  async session(relativePath: string): Promise<ort.InferenceSession> {
    const file = this.resolve(relativePath);
    const session = await this.open(file);
    this.opened.push(relativePath);
    return session;
  }

  /** A model shipped inside the worker package (not synced into MODEL_DIR), such as BlazeFace. */
  async bundledSession(file: string, label: string): Promise<ort.InferenceSession> {
    if (!existsSync(file)) throw new ModelError(`bundled model ${label} is missing from the worker package (${file})`);
    const session = await this.open(file);
    this.opened.push(label);
    return session;
  }

  /** A model built in memory when the worker starts (the landmark network, from its package's weights). */
  async builtSession(model: Uint8Array, label: string): Promise<ort.InferenceSession> {
    const session = await this.open(model);
    this.opened.push(label);
    return session;
  }

  /** `file` is a path or the model's bytes (onnxruntime takes either). */
  private async open(file: string | Uint8Array): Promise<ort.InferenceSession> {
    // One core is left to ffmpeg and the JavaScript stages that run beside inference; sessions run
    // one at a time per job, so they share the rest rather than fight over it.
    const base: ort.InferenceSession.SessionOptions = {
      graphOptimizationLevel: 'all',
      // onnxruntime's own warnings (unused initializers and the like) are noise in a worker's log.
      logSeverityLevel: 3,
      intraOpNumThreads: this.options.threads ?? Math.max(1, os.availableParallelism() - 1),
      interOpNumThreads: 1,
    };
    if (this.chosen) return create(file, { ...base, executionProviders: [this.chosen] });
    // Tried in order until one loads: TensorRT only when configured, then CUDA, then the CPU.
    const choice = this.options.executionProvider;
    const candidates: Array<'tensorrt' | 'cuda'> = choice === 'tensorrt' ? ['tensorrt', 'cuda'] : choice === 'cpu' ? [] : ['cuda'];
    for (const [i, provider] of candidates.entries()) {
      try {
        // Fatal-only while probing: the failure is expected on CPU hosts and reported below in one line.
        const session = await create(file, { ...base, logSeverityLevel: 4, executionProviders: [provider] });
        this.chosen = provider;
        return session;
      } catch (error) {
        if (choice === 'cuda') throw new ModelError(`EXECUTION_PROVIDER=cuda but the CUDA provider failed to load: ${firstLine(error)}`);
        const next = candidates[i + 1] === 'cuda' ? 'CUDA' : 'CPU';
        this.options.log.warn(`${provider === 'cuda' ? 'CUDA' : 'TensorRT'} execution provider unavailable; using ${next}`, { reason: firstLine(error) });
      }
    }
    const session = await create(file, { ...base, executionProviders: ['cpu'] });
    this.chosen = 'cpu';
    return session;
  }
}
