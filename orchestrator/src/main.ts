import 'reflect-metadata';
import { Logger, type LogLevel } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { FastifyAdapter, type NestFastifyApplication } from '@nestjs/platform-fastify';
import { SwaggerModule } from '@nestjs/swagger';
import { answerMalformedRequest } from '@avatar-fleet/contracts';
import { DataSource } from 'typeorm';
import { AppModule } from './app.module';
import { frameworkErrorHandler } from './common/error.filter';
import { ConfigError, loadConfig, type OrchestratorConfig } from './config/orchestrator.config';
import { startEmbeddedPostgres, type EmbeddedDatabase } from './database/embedded-postgres';
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
    embedded = await startEmbeddedPostgres(config.EMBEDDED_PG_DIR, config.EMBEDDED_PG_PORT);
    databaseUrl = embedded.url;
    logger.log(`embedded PostgreSQL running on 127.0.0.1:${config.EMBEDDED_PG_PORT} (data in ${config.EMBEDDED_PG_DIR})`);
  }

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
  SwaggerModule.setup('docs', app, buildOpenApi(app));
  await app.listen(config.PORT, config.HOST);
  const address = fastify.server.address();
  const port = typeof address === 'object' && address ? address.port : config.PORT;
  const url = `http://${config.HOST}:${port}`;
  return {
    app,
    url,
    async close() {
      await app.close();
      await embedded?.stop();
    },
  };
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
  const running = await startOrchestrator(config);
  const logger = new Logger('main');
  // Printed whatever LOG_LEVEL says: scripts and tests wait for this line.
  process.stdout.write(`orchestrator listening on ${running.url}\n`);
  process.stdout.write(`  API docs ${running.url}/docs | health ${running.url}/health | metrics ${running.url}/metrics\n`);
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.log(`${signal}: shutting down`);
    running.close().then(
      () => process.exit(0),
      (error: Error) => {
        logger.error(`shutdown failed: ${error.message}`);
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}

if (require.main === module) {
  main().catch((error: unknown) => {
    const detail = error instanceof Error ? (error.stack ?? error.message) : String(error);
    process.stderr.write(`orchestrator failed to start: ${detail}\n`);
    process.exit(1);
  });
}
