import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { lane, lipsyncJob, workerRegistration } from './helpers/fixtures';
import { useOrchestrator } from './helpers/orchestrator-suite';

/**
 * A job that kills or stops the workers that run it must end, not circle forever. Each test runs
 * one job through the same worker id until the cap (the suite's defaults: MAX_LEASE_LOSSES 5,
 * MAX_RELEASES 10). Between rounds the job's backoff is ended by hand, standing in for the wait.
 */
describe('poison jobs', () => {
  const suite = useOrchestrator();
  const backoffOver = (id: string) => suite.db.pool.query(`UPDATE jobs SET run_after = now() WHERE id = $1`, [id]);
  const row = async (id: string) => (await suite.db.pool.query(
    `SELECT state, error_code, error_message, lease_losses, releases, run_after > now() AS backing_off FROM jobs WHERE id = $1`, [id])).rows[0];

  test('a job whose fixed-id worker restarts while running it backs off each time and fails after MAX_LEASE_LOSSES', async () => {
    const gpuClass = lane();
    const registration = workerRegistration({ gpuClass, workerId: `fixed-${gpuClass}` });
    const job = await suite.fleet.createJob(lipsyncJob({ requirements: { gpuClass } }));
    await suite.worker.register(registration);
    for (let round = 1; round <= 5; round++) {
      const claimed = await suite.worker.claim(registration.workerId!, 0);
      assert.equal(claimed?.job.id, job.id, `round ${round}: the job is claimable again`);
      await suite.worker.register(registration); // the process died holding it and came back
      const after = await row(job.id);
      assert.equal(after.lease_losses, round, 'each restart is a lease loss');
      if (round < 5) {
        assert.deepEqual([after.state, after.error_code, after.backing_off], ['queued', 'lease_lost', true], `round ${round}`);
        assert.match(after.error_message, /restarted while running it/);
        assert.equal(await suite.worker.claim(registration.workerId!, 0), null, 'not claimable while it backs off');
        await backoffOver(job.id);
      } else {
        assert.deepEqual([after.state, after.error_code], ['failed', 'too_many_lease_losses']);
        assert.match(after.error_message, /lost its worker 5 times .*restarted while running it/);
      }
    }
    const attempts = await suite.db.pool.query(`SELECT outcome FROM job_attempts WHERE job_id = $1 ORDER BY attempt`, [job.id]);
    assert.deepEqual(attempts.rows.map((r) => r.outcome), Array(5).fill('lease_lost'));
  });

  test('a job handed back by gracefully stopping workers backs off each time and fails after MAX_RELEASES', async () => {
    const gpuClass = lane();
    const registration = workerRegistration({ gpuClass, workerId: `stopping-${gpuClass}` });
    const job = await suite.fleet.createJob(lipsyncJob({ requirements: { gpuClass } }));
    for (let round = 1; round <= 10; round++) {
      await suite.worker.register(registration);
      assert.equal((await suite.worker.claim(registration.workerId!, 0))?.job.id, job.id, `round ${round}`);
      assert.deepEqual((await suite.worker.deregister(registration.workerId!)).released, [job.id]);
      const after = await row(job.id);
      assert.deepEqual([after.releases, after.lease_losses], [round, 0], 'counted as a release, not a lease loss');
      if (round < 10) {
        assert.deepEqual([after.state, after.backing_off], ['queued', true], `round ${round}`);
        await backoffOver(job.id);
      } else {
        assert.deepEqual([after.state, after.error_code], ['failed', 'too_many_releases']);
        assert.match(after.error_message, /handed back by stopping workers 10 times/);
      }
    }
  });
});
