import 'reflect-metadata';
import { Logger, type LogLevel } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { FastifyAdapter, type NestFastifyApplication } from '@nestjs/platform-fastify';
import { SwaggerModule } from '@nestjs/swagger';
import { answerMalformedRequest } from '@avatar-fleet/contracts';
import { DataSource } from 'typeorm';
import { AppModule } from './app.module';
import { frameworkErrorHandler } from './common/error.filter';
import { trackIdleConnections } from './common/idle-connections';
import { ConfigError, loadConfig, type OrchestratorConfig } from './config/orchestrator.config';
import { isEmbeddedStartError, startEmbeddedPostgres, type EmbeddedDatabase } from './database/embedded-postgres';
import { runMigrations } from './database/migrate';
import { MetricsService } from './observability/metrics.service';
import { buildOpenApi } from './observability/openapi';

const LEVELS: LogLevel[] = ['fatal', 'error', 'warn', 'log', 'debug', 'verbose'];

export interface RunningOrchestrator {
  app: NestFastifyApplication;
  url: string;
  close(): Promise<void>;
}

/** Starts one orchestrator replica: database (embedded unless DATABASE_URL), migrations, HTTP. */
export async function startOrchestrator(config: OrchestratorConfig): Promise<RunningOrchestrator> {
  const logger = new Logger('main');
  let embedded: EmbeddedDatabase | null = null;
  let databaseUrl = config.DATABASE_URL;
  if (!databaseUrl) {
    embedded = await startEmbeddedPostgres(config.EMBEDDED_PG_DIR, config.EMBEDDED_PG_PORT, 'fleet', (message) => logger.warn(message));
    databaseUrl = embedded.url;
    logger.log(`embedded PostgreSQL running on 127.0.0.1:${config.EMBEDDED_PG_PORT} (data in ${config.EMBEDDED_PG_DIR})`);
  }
  let app: NestFastifyApplication;
  let closing = false;
  try {
    app = await startApp(config, databaseUrl, logger, () => closing);
  } catch (error) {
    // A server this process started is not left behind for the next start to clear up.
    await embedded?.stop();
    throw error;
  }
  const address = app.getHttpAdapter().getInstance().server.address();
  const port = typeof address === 'object' && address ? address.port : config.PORT;
  return {
    app,
    url: `http://${config.HOST}:${port}`,
    /**
     * Nest first: new requests are refused (503), parked long-polls answer, the reaper's last tick
     * ends, the HTTP server closes, then the pools. The embedded server goes last, once nothing
     * holds a connection to it.
     */
    async close() {
      closing = true;
      try {
        await app.close();
      } finally {
        await embedded?.stop();
      }
    },
  };
}

async function startApp(config: OrchestratorConfig, databaseUrl: string, logger: Logger, closing: () => boolean): Promise<NestFastifyApplication> {
  const adapter = new FastifyAdapter({
    bodyLimit: config.BODY_LIMIT_BYTES,
    onProtoPoisoning: 'error',
    onConstructorPoisoning: 'error',
    return503OnClosing: true,
    // Worker ids are up to 128 characters (WORKER_ID_PATTERN); fastify's default of 100 refused the longer ones.
    routerOptions: { maxParamLength: 256 },
    // Refusals that happen before Nest sees the request still answer with an ErrorBody.
    clientErrorHandler: answerMalformedRequest,
    frameworkErrors: frameworkErrorHandler,
  });
  const app = await NestFactory.create<NestFastifyApplication>(AppModule.forRoot(config, databaseUrl), adapter, {
    logger: LEVELS.slice(0, LEVELS.indexOf(config.LOG_LEVEL) + 1),
    // JSON only, through fastify's own parser (bodyLimit, poisoning checks): a form or text body is a
    // 415 naming Content-Type, not a validation error about a key made of the whole body.
    bodyParser: false,
  });
  app.getHttpAdapter().getInstance().removeContentTypeParser('text/plain');
  const applied = await runMigrations(app.get(DataSource));
  if (applied.length) logger.log(`applied migrations: ${applied.join(', ')}`);

  const fastify = app.getHttpAdapter().getInstance();
  const metrics = app.get(MetricsService);
  fastify.addHook('onResponse', (request, reply, done) => {
    const route = request.routeOptions.url ?? 'unmatched';
    metrics.requestDuration.observe({ method: request.method, route, status: String(reply.statusCode) }, reply.elapsedTime / 1000);
    done();
  });
  // The HTTP server closes once every connection has; a keep-alive connection busy when the close
  // began (a long-poll, answered at shutdown) would otherwise idle on for the keep-alive timeout.
  fastify.addHook('onSend', (_request, reply, payload, done) => {
    if (closing()) reply.header('Connection', 'close');
    done(null, payload);
  });
  const connections = trackIdleConnections(fastify.server);
  fastify.addHook('preClose', (done) => {
    connections.closeIdle();
    done();
  });
  SwaggerModule.setup('docs', app, buildOpenApi(app));
  await app.listen(config.PORT, config.HOST);
  return app;
}

async function main(): Promise<void> {
  let config: OrchestratorConfig;
  try {
    config = loadConfig();
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`orchestrator: ${error.message}\n`);
      process.exit(2);
    }
    throw error;
  }
  const logger = new Logger('main');
  // Listening from the start: a stop asked for while the database starts or migrations run waits
  // for the start to finish, then shuts down in order, rather than killing the process mid-way.
  const starting = startOrchestrator(config);
  let stopping = false;
  const stop = (reason: string) => {
    if (stopping) {
      // Asked twice: whoever asks does not want to wait. The embedded server is told to stop on exit.
      logger.warn(`${reason} again: exiting without a clean shutdown`);
      process.exit(1);
    }
    stopping = true;
    logger.log(`${reason}: shutting down`);
    // A start that fails is reported by main's caller.
    starting.then(
      (running) =>
        running.close().then(
          () => {
            logger.log('stopped');
            process.exit(0);
          },
          (error: Error) => {
            logger.error(`shutdown failed: ${error.message}`);
            process.exit(1);
          },
        ),
      () => undefined,
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  // Started with an IPC channel (scripts/start-local.mjs): when the parent goes, even killed with
  // SIGKILL, the channel closes, and this process stops rather than live on as an orphan.
  if (process.send) process.once('disconnect', () => stopping || stop('parent process gone'));
  const running = await starting;
  if (stopping) return;
  // Printed whatever LOG_LEVEL says: scripts and tests wait for this line.
  process.stdout.write(`orchestrator listening on ${running.url}\n`);
  process.stdout.write(`  API docs ${running.url}/docs | health ${running.url}/health | metrics ${running.url}/metrics\n`);
}

if (require.main === module) {
  main().catch((error: unknown) => {
    if (isEmbeddedStartError(error)) {
      // Expected and explained in full by its message; a stack would only bury it.
      process.stderr.write(`orchestrator failed to start: ${error.message}\n`);
      process.exit(1);
    }
    const detail = error instanceof Error ? (error.stack ?? error.message) : String(error);
    process.stderr.write(`orchestrator failed to start: ${detail}\n`);
    process.exit(1);
  });
}
