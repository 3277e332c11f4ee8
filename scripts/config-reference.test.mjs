// docs/configuration.md against the config classes (run by `npm test`, after the build).
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { REFERENCE, configProblems, firstDifference, renderReference, undocumentedEnvReads } from './config-reference.mjs';

test('every variable of OrchestratorConfig and WorkerEnv has a description, and credentials are marked secret', () => {
  assert.deepEqual(configProblems(), []);
});

test('docs/configuration.md matches the config classes', () => {
  const current = readFileSync(REFERENCE, 'utf8');
  const expected = renderReference(current);
  if (current !== expected) {
    assert.fail(`docs/configuration.md differs from the config classes at ${firstDifference(current, expected)}\nrun \`npm run docs:config\``);
  }
});

test('every process.env variable read in orchestrator/src and worker/src is in docs/configuration.md', () => {
  assert.deepEqual(undocumentedEnvReads(readFileSync(REFERENCE, 'utf8')), []);
});
