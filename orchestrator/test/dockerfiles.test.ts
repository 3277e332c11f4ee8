import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';

const root = path.resolve(__dirname, '../../..');

type Finding = { line: number; message: string };
async function linter(): Promise<(text: string, file: string) => Finding[]> {
  // The linter is a dependency-free ES module so `npm run lint:docker` needs no build.
  const mod = (await import(path.join(root, 'scripts/lint-dockerfiles.mjs'))) as { lintDockerfile: (t: string, f: string) => Finding[] };
  return mod.lintDockerfile;
}

test('both Dockerfiles pass the lint', async () => {
  const lint = await linter();
  for (const file of ['Dockerfile.orchestrator', 'Dockerfile.worker']) {
    assert.deepEqual(lint(readFileSync(path.join(root, file), 'utf8'), file), [], file);
  }
});

test('the lint catches the mistakes it exists for', async () => {
  const lint = await linter();
  const bad = [
    'FROM node AS build',
    'RUN apt-get update && apt-get install -y curl',
    'ADD https://example.com/tool.tgz /opt/',
    'COPY --from=missing /x /y',
    'ENV API_SECRET=hunter2',
    'CMD node main.js',
  ].join('\n');
  const messages = lint(bad, 'Dockerfile.bad').map((f) => f.message).join('\n');
  for (const expected of [/tag|latest/i, /no-install-recommends/, /apt\/lists|lists/, /ADD/, /missing/, /secret|SECRET/i, /JSON/i]) {
    assert.match(messages, expected);
  }
  const orchestrator = readFileSync(path.join(root, 'Dockerfile.orchestrator'), 'utf8');
  assert.ok(lint(orchestrator.replace(/^USER .*$/m, ''), 'Dockerfile.orchestrator').length > 0, 'a root runtime stage is flagged');
});
