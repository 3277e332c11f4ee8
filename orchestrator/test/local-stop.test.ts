import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { processInfo } from '../src/database/postgres-processes';
import { freePort } from './helpers/free-port';

const START_LOCAL = path.resolve(__dirname, '../../../scripts/start-local.mjs');

/** Waits for `pattern` in the growing output; the limit only keeps a broken run from hanging the suite. */
function waitFor(output: () => string, pattern: RegExp, exited: Promise<unknown>, limitMs = 300_000): Promise<RegExpExecArray> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no ${pattern} within ${limitMs / 1000} s:\n${output()}`)), limitMs);
    const check = setInterval(() => {
      const match = pattern.exec(output());
      if (!match) return;
      clearInterval(check);
      clearTimeout(timer);
      resolve(match);
    }, 50);
    void exited.then(() => {
      clearInterval(check);
      clearTimeout(timer);
      reject(new Error(`exited before ${pattern}:\n${output()}`));
    });
  });
}

describe('npm start\'s clean stop (scripts/start-local.mjs as a real process)', () => {
  const dataDir = mkdtempSync(path.join(os.tmpdir(), 'local-stop-'));
  // As root the embedded server runs as the postgres user, which must be able to enter this folder.
  chmodSync(dataDir, 0o755);
  after(() => rmSync(dataDir, { recursive: true, force: true }));

  test('SIGINT to the script alone (as Ctrl-C reaches it): the worker deregisters, then the orchestrator and PostgreSQL stop; exit 0, no ERROR, nothing left', async () => {
    const script = spawn(process.execPath, [START_LOCAL], {
      env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', NO_COLOR: '1', LOCAL_DATA_DIR: dataDir, PORT: '0', EMBEDDED_PG_PORT: String(await freePort()) },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    script.stdout.on('data', (d: Buffer) => (output += d));
    script.stderr.on('data', (d: Buffer) => (output += d));
    const exited = new Promise<number | null>((resolve) => script.on('exit', (code) => resolve(code)));
    const log = () => output;

    const orchestratorPid = Number((await waitFor(log, /\[orchestrator\] started, pid (\d+)/, exited))[1]);
    const workerPid = Number((await waitFor(log, /\[worker\] started, pid (\d+)/, exited))[1]);
    await waitFor(log, / INFO {2}ready /, exited);
    const postmaster = Number(readFileSync(path.join(dataDir, 'postgres', 'postmaster.pid'), 'utf8').split('\n')[0]);

    script.kill('SIGINT');
    assert.equal(await exited, 0);
    const lines = output.split('\n');
    const at = (pattern: RegExp) => lines.findIndex((line) => pattern.test(line));
    const deregistered = at(/\[worker\] .*INFO {2}deregistered/);
    const orchestratorStops = at(/\[main\] SIGINT: shutting down/);
    assert.ok(deregistered >= 0, `the worker deregistered:\n${output}`);
    assert.ok(orchestratorStops > deregistered, 'the orchestrator was stopped after the worker had deregistered');
    assert.ok(at(/\[main\] stopped/) > orchestratorStops, 'and stopped cleanly');
    assert.deepEqual(lines.filter((line) => /\bERROR\b/.test(line)), []);
    for (const pid of [workerPid, orchestratorPid, postmaster]) assert.equal(processInfo(pid), null, `pid ${pid} is gone`);
  });
});
