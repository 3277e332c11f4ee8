import 'reflect-metadata';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { loadWorkerConfig, WorkerConfigError } from './config/worker.config';
import type { PipelineSet } from './pipelines/pipeline';
import { runBufferLoop } from './runtime/buffer-loop';
import { FleetWorker } from './runtime/fleet-worker';
import { createLogger, errorMessage } from './runtime/logger';
import { startWorkerServer } from './runtime/http-server';

export const EXIT_CONFIG = 2;
export const EXIT_START_FAILED = 3;

/**
 * The whole worker process: configuration from `env`, start-up, the mode's loop, and a graceful
 * stop on SIGTERM/SIGINT (a second signal forces it). Resolves with the exit code.
 */
export async function runWorker(env: NodeJS.ProcessEnv, pipelines: PipelineSet): Promise<number> {
  let config;
  try {
    config = loadWorkerConfig(env);
  } catch (error) {
    if (!(error instanceof WorkerConfigError)) throw error;
    createLogger('error').error(error.message);
    return EXIT_CONFIG;
  }
  const log = createLogger(config.logLevel);
  log.info('config loaded', { mode: config.mode, storage: config.storage.driver, slots: config.slots, provider: config.provider, modelSync: config.modelSync ? 'on' : 'off' });
  const worker = new FleetWorker(config, pipelines, log);

  const onSignal = (signal: NodeJS.Signals) => {
    const again = worker.stopRequested;
    log.info(again ? `${signal} again: releasing running jobs now` : `${signal}: stopping gracefully`);
    void worker.stop(signal, again);
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  // Started with an IPC channel (scripts/start-local.mjs): it closes when the parent dies, even by
  // SIGKILL, and then the worker stops as on SIGTERM rather than live on as an orphan.
  const onParentGone = () => {
    if (worker.stopRequested) return;
    log.info('parent process gone: stopping gracefully');
    void worker.stop('parent process gone');
  };
  if (process.send) process.once('disconnect', onParentGone);

  let server: Server | undefined;
  try {
    try {
      // Listen first, so probes see the container up (/ping) but not healthy (/hc 503) while
      // models sync and load, which can take minutes.
      server = await startWorkerServer(worker, config.port);
      await worker.start();
    } catch (error) {
      if (worker.stopRequested) {
        await worker.stop('stopped during start-up');
        log.info('stopped before it was ready');
        return 0;
      }
      log.error('start-up failed', { reason: errorMessage(error) });
      await worker.stop('start-up failed', true);
      return EXIT_START_FAILED;
    }
    worker.ready = true;
    log.info('ready', { mode: config.mode, port: (server.address() as AddressInfo).port });
    if (config.mode === 'buffer') await runBufferLoop(worker);
    else await new Promise<void>((resolve) => worker.stopSignal.addEventListener('abort', () => resolve(), { once: true }));
    await worker.stop('stopped');
    log.info('stopped');
    return 0;
  } finally {
    server?.close();
    server?.closeAllConnections();
    process.off('SIGTERM', onSignal);
    process.off('SIGINT', onSignal);
    process.off('disconnect', onParentGone);
  }
}
