// `npm start`: the fleet on this machine. Starts the orchestrator on an embedded PostgreSQL (unless
// DATABASE_URL is set) with local keys, and prints where everything is. A local worker and a demo
// job join here once the worker has pipelines to run (the MuseTalk pipelines).
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const dataDir = path.join(root, '.data');
const keysFile = path.join(dataDir, 'local-keys.json');

/** Keys for local runs, made once and kept in .data/ so restarts and scripts keep working. */
function localKeys() {
  if (existsSync(keysFile)) return JSON.parse(readFileSync(keysFile, 'utf8'));
  mkdirSync(dataDir, { recursive: true });
  const keys = { product: `local-${randomBytes(16).toString('hex')}`, internal: `internal-${randomBytes(16).toString('hex')}` };
  writeFileSync(keysFile, JSON.stringify(keys, null, 2), { mode: 0o600 });
  return keys;
}

const keys = localKeys();
const env = {
  ...process.env,
  API_KEYS: process.env.API_KEYS ?? `local:${keys.product}`,
  INTERNAL_API_KEY: process.env.INTERNAL_API_KEY ?? keys.internal,
  EMBEDDED_PG_DIR: process.env.EMBEDDED_PG_DIR ?? path.join(dataDir, 'postgres'),
};
// A larger young generation: the request path allocates a lot, and scavenges were ~13 % of its CPU.
const child = spawn(process.execPath, ['--max-semi-space-size=32', path.join(root, 'orchestrator/dist/src/main.js')], { cwd: root, env, stdio: ['ignore', 'pipe', 'inherit'] });
let announced = false;
child.stdout.on('data', (chunk) => {
  process.stdout.write(chunk);
  const match = !announced && /orchestrator listening on (http:\/\/\S+)/.exec(chunk.toString());
  if (!match) return;
  announced = true;
  const url = match[1];
  const productKey = process.env.API_KEYS ? '<a key from API_KEYS>' : keys.product;
  process.stdout.write(
    [
      '',
      'avatar-fleet is up (Ctrl-C stops it):',
      `  product API   ${url}/v1        key: ${productKey}`,
      `  worker API    ${url}/internal  key: ${process.env.INTERNAL_API_KEY ? '<INTERNAL_API_KEY>' : keys.internal}`,
      `  API docs      ${url}/docs`,
      `  health        ${url}/health    metrics ${url}/metrics`,
      '  keys are kept in .data/local-keys.json; data in .data/postgres',
      '',
      'Try it:',
      `  curl -s -X POST ${url}/v1/jobs -H 'Authorization: Bearer ${productKey}' -H 'Content-Type: application/json' \\`,
      `    -d '{"kind":"lipsync","input":{"avatarId":"demo","audio":"https://example.com/speech.wav"}}'`,
      '',
    ].join('\n'),
  );
});
for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => child.kill(signal));
child.on('exit', (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
