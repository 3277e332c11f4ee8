import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { startOrchestratorProcess, type OrchestratorProcess } from '@avatar-fleet/orchestrator/dist/test/helpers/orchestrator-process';
import { createTestDatabase } from '@avatar-fleet/orchestrator/dist/test/helpers/test-database';
import { FAST_FLEET, Lane } from './helpers/fleet-fixture';

describe('the orchestrator goes away mid-job', () => {
  let db: Awaited<ReturnType<typeof createTestDatabase>>;
  let orch: OrchestratorProcess;
  // A lease long enough to outlive the restart: the result must survive the outage, not the lease.
  const env = { ...FAST_FLEET, LEASE_TTL_SEC: '15' };
  let lane: Lane;
  before(async () => {
    db = await createTestDatabase();
    orch = await startOrchestratorProcess(db.url, env);
    lane = new Lane(() => orch.url, () => orch.fleet());
  });
  after(async () => {
    await lane.cleanup();
    await orch.stop();
    await db.drop();
  });

  test('the worker keeps its finished result and delivers it once the orchestrator is back', async () => {
    const worker = await lane.worker({ TEST_WORKER_TAG: 'patient', TEST_JOB_MS: '2000' });
    const id = await lane.job();
    await lane.until(id, (j) => j.state === 'running');
    const port = new URL(orch.url).port;
    await orch.stop();
    await worker.waitFor(/final status not delivered yet; keeping the result and retrying/);
    orch = await startOrchestratorProcess(db.url, { ...env, PORT: port });
    const done = await lane.until(id, (j) => j.state === 'succeeded', 45_000);
    assert.equal(done.attempt, 1);
    assert.equal(lane.output(done).split(' ')[0], 'patient');
    await worker.waitFor(/final status accepted/);
    await worker.waitFor(/heartbeats reach the orchestrator again/);
  });
});
