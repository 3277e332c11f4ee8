import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { freePort } from './helpers/free-port';
import { processInfo } from '../src/database/postgres-processes';
import { lipsyncJob } from './helpers/fixtures';
import { API_KEY, INTERNAL_KEY, startOrchestratorProcess, type OrchestratorProcess } from './helpers/orchestrator-process';

const MAIN = path.resolve(__dirname, '../src/main.js');

/** The postmaster's pid from the data folder's lock file, or undefined when there is none. */
function postmasterPid(dataDir: string): number | undefined {
  try {
    return Number(readFileSync(path.join(dataDir, 'postmaster.pid'), 'utf8').split('\n')[0]);
  } catch {
    return undefined;
  }
}

/** Runs main.js to its exit (it is expected to refuse to start) and returns its code and output. */
function runToExit(env: Record<string, string>): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve) => {
    const proc = spawn(process.execPath, [MAIN], {
      env: { PATH: process.env.PATH ?? '', NO_COLOR: '1', PORT: '0', API_KEYS: `product:${API_KEY}`, INTERNAL_API_KEY: INTERNAL_KEY, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    proc.stdout.on('data', (d: Buffer) => (output += d));
    proc.stderr.on('data', (d: Buffer) => (output += d));
    proc.on('close', (code) => resolve({ code, output }));
  });
}

describe('the embedded PostgreSQL across orchestrator crashes (real processes, real kill -9)', () => {
  const root = mkdtempSync(path.join(os.tmpdir(), 'embedded-pg-'));
  // As root the server runs as the postgres user, which must be able to enter this folder.
  chmodSync(root, 0o755);
  const dataDir = path.join(root, 'postgres');
  const running: OrchestratorProcess[] = [];
  after(async () => {
    for (const orch of running) await orch.stop().catch(() => undefined);
    rmSync(root, { recursive: true, force: true });
  });

  test('a server left behind by a killed orchestrator is stopped and started again, data intact; a live one is never touched', async () => {
    const port = String(await freePort());
    const embedded = { DATABASE_URL: '', EMBEDDED_PG_DIR: dataDir, EMBEDDED_PG_PORT: port };
    const first = await startOrchestratorProcess('', embedded);
    running.push(first);
    const job = await first.fleet().createJob(lipsyncJob());
    const leftover = postmasterPid(dataDir)!;

    await first.kill();
    assert.ok(processInfo(leftover), 'kill -9 of the orchestrator leaves its PostgreSQL running');

    const second = await startOrchestratorProcess('', embedded);
    running.push(second);
    assert.match(second.output(), new RegExp(`PostgreSQL pid ${leftover} .* is still running .* stopping it`));
    assert.equal(processInfo(leftover), null, 'the leftover server is gone');
    assert.notEqual(postmasterPid(dataDir), leftover, 'a new server runs on the folder');
    assert.equal((await second.fleet().getJob(job.id)).state, 'queued', 'the job written before the crash is still there');

    // While its owner lives, the folder is refused, and the live server is left alone.
    const third = await runToExit(embedded);
    assert.equal(third.code, 1);
    assert.match(third.output, /data folder .* belongs to a running process, pid \d+ .*Is another `npm start` running\?/);
    assert.doesNotMatch(third.output, /\n\s+at /, 'an explanation, not a stack trace');
    assert.equal((await second.fleet().getJob(job.id)).id, job.id, 'the live orchestrator still answers');

    // A clean stop takes the server with it: nothing is left for the next start to clear.
    const serverPid = postmasterPid(dataDir)!;
    assert.equal(await second.stop(), 0);
    assert.equal(processInfo(serverPid), null);
    assert.equal(postmasterPid(dataDir), undefined);
  });

  test('as root, a data folder the postgres user cannot reach is refused with the reason, not initdb\'s EACCES', { skip: process.getuid?.() !== 0 && 'only root runs the server as another user' }, async () => {
    const closed = path.join(root, 'closed');
    mkdirSync(closed, { mode: 0o700 });
    const result = await runToExit({ DATABASE_URL: '', EMBEDDED_PG_DIR: path.join(closed, 'postgres'), EMBEDDED_PG_PORT: String(await freePort()) });
    assert.equal(result.code, 1);
    assert.match(result.output, new RegExp(`the postgres user, which cannot enter ${closed} \\(mode 700\\)`));
  });
});
