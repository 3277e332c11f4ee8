// `npm test`: one real PostgreSQL for the whole run, then node's test runner over the compiled tests.
// Ends with node's own summary (tests / pass / fail), which CI reads.
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startTestPostgres } from './test-database.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const packages = ['contracts', 'orchestrator', 'worker', 'sim'];

function testFiles(dir) {
  let out = [];
  let entries = [];
  try {
    entries = readdirSync(dir);
  } catch {
    return out;
  }
  for (const name of entries) {
    const full = path.join(dir, name);
    if (statSync(full).isDirectory()) out = out.concat(testFiles(full));
    else if (name.endsWith('.test.js')) out.push(full);
  }
  return out;
}

const filter = process.argv.slice(2);
// Checks of the repository itself (docs against code): plain ES modules in scripts/, run as they are.
const scriptTests = readdirSync(path.join(root, 'scripts')).filter((n) => n.endsWith('.test.mjs')).map((n) => path.join(root, 'scripts', n));
const files = packages
  .flatMap((p) => testFiles(path.join(root, p, 'dist', 'test')))
  // Only tests whose source still exists: tsc -b leaves the output of deleted files behind.
  .filter((f) => existsSync(f.replace(`${path.sep}dist${path.sep}`, path.sep).replace(/\.js$/, '.ts')))
  .concat(scriptTests)
  .filter((f) => filter.length === 0 || filter.some((pattern) => f.includes(pattern)))
  .map((f) => path.relative(root, f));

const pg = await startTestPostgres();
const env = { ...process.env, TEST_PG_BASE: pg.base, TEST_PG_TEMPLATE: pg.template };
const child = spawn(process.execPath, ['--test', '--test-concurrency=2', ...files], { cwd: root, env, stdio: 'inherit' });
const stop = () => child.kill('SIGTERM');
process.on('SIGINT', stop);
process.on('SIGTERM', stop);
const code = await new Promise((resolve) => child.on('exit', (c, signal) => resolve(c ?? (signal ? 1 : 0))));
await pg.stop();
process.exit(code);
