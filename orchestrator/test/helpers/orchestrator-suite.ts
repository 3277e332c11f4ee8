import { after, before } from 'node:test';
import type { FleetClient, OperatorClient, WorkerClient } from '@avatar-fleet/contracts';
import { startOrchestratorProcess, type OrchestratorProcess } from './orchestrator-process';
import { createTestDatabase } from './test-database';

export interface OrchestratorSuite {
  db: Awaited<ReturnType<typeof createTestDatabase>>;
  orch: OrchestratorProcess;
  fleet: FleetClient;
  /** The operator's client: workers, commands, every owner's jobs, metrics. */
  ops: OperatorClient;
  worker: WorkerClient;
}

/**
 * For a describe block: a fresh database and one orchestrator process (with `env`) before its
 * tests, both gone after. The fields are filled in by the time the tests run.
 */
export function useOrchestrator(env: Record<string, string> = {}): OrchestratorSuite {
  const suite = {} as OrchestratorSuite;
  before(async () => {
    suite.db = await createTestDatabase();
    suite.orch = await startOrchestratorProcess(suite.db.url, env);
    suite.fleet = suite.orch.fleet();
    suite.ops = suite.orch.operator();
    suite.worker = suite.orch.worker();
  });
  after(async () => {
    await suite.orch?.stop();
    await suite.db?.drop();
  });
  return suite;
}
