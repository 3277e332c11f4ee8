import { mkdtempSync, chmodSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { startEmbeddedPostgres } from '@avatar-fleet/orchestrator/dist/src/database/embedded-postgres';
import { migrateDatabase } from '@avatar-fleet/orchestrator/dist/src/database/migrate';

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

/** A fresh, migrated embedded PostgreSQL in a temporary folder, removed on stop. */
export async function startBenchDatabase(): Promise<{ url: string; stop(): Promise<void> }> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'avatar-fleet-bench-'));
  chmodSync(dir, 0o755);
  const db = await startEmbeddedPostgres(path.join(dir, 'data'), await freePort(), 'bench');
  await migrateDatabase(db.url);
  return {
    url: db.url,
    async stop() {
      await db.stop().catch(() => undefined);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
