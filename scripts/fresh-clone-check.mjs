// `npm run check:fresh-clone` (and .ci/run, after `npm test`): what a new user gets. Clones HEAD into
// a temporary folder, installs with `npm ci`, and runs `npm start` there with no system ffmpeg on
// PATH and none of this machine's fleet settings, until the demo prints "demo finished"; then stops
// it with SIGINT, as Ctrl-C would. Fails on an install warning the project has fixed before, on a
// demo that fails, and on a stop that is not clean. Only committed work is checked.
//   --keep   leave the clone (its path is printed) for a look afterwards
import { execFileSync, spawn } from 'node:child_process';
import { accessSync, chmodSync, constants, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort } from './test-database.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const keep = process.argv.includes('--keep');
/** Hang guards only: a slow machine is allowed to be slow. */
const INSTALL_LIMIT_MS = 15 * 60_000;
const DEMO_LIMIT_MS = 20 * 60_000;
const STOP_LIMIT_MS = 2 * 60_000;
/** Install warnings fixed once (issue 10) that must not come back. */
const FIXED_WARNINGS = [/Unknown project config/, /EBADENGINE/, /install scripts not yet covered by allowScripts/];

const say = (line) => process.stdout.write(`fresh-clone-check: ${line}\n`);
const seconds = (ms) => `${(ms / 1000).toFixed(1)} s`;

function fail(message, output = '') {
  if (output) process.stdout.write(`${output.split('\n').slice(-60).join('\n')}\n`);
  say(`FAILED: ${message}`);
  process.exitCode = 1;
}

/** PATH without any folder that holds an ffmpeg or ffprobe: the demo must use the npm builds. */
function pathWithoutFfmpeg() {
  const executable = (file) => {
    try {
      accessSync(file, constants.X_OK);
      return true;
    } catch {
      return false;
    }
  };
  return (process.env.PATH ?? '').split(path.delimiter).filter((dir) => dir && !['ffmpeg', 'ffprobe'].some((bin) => executable(path.join(dir, bin)))).join(path.delimiter);
}

/** This machine's environment less anything that would make the clone behave unlike a new user's. */
async function newUserEnv() {
  const env = { ...process.env, PATH: pathWithoutFfmpeg() };
  for (const name of Object.keys(env)) {
    // The calling npm's own settings (npm_config_*, npm_lifecycle_*) and every fleet setting.
    if (/^npm_/i.test(name) || /^(FFMPEG_PATH|FFPROBE_PATH|DATABASE_URL|API_KEYS|OPERATOR_KEYS|INTERNAL_API_KEY|MODEL_DIR|LOCAL_WORKER|EMBEDDED_PG_DIR|GPU_CLASS|GPU_VRAM_GB|EXECUTION_PROVIDER|WORKER_PORT|STORAGE_DRIVER|LOCAL_STORAGE_DIR)$/.test(name)) delete env[name];
  }
  // Free ports, so a developer's own `npm start` on the defaults is left alone.
  return { ...env, PORT: '0', EMBEDDED_PG_PORT: String(await freePort()) };
}

/** Processes still running from the clone (the orchestrator, the worker, PostgreSQL on its data folder), by /proc. */
function leftovers(folder) {
  return readdirSync('/proc').filter((pid) => /^\d+$/.test(pid)).flatMap((pid) => {
    try {
      const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ').trim();
      return cmdline.includes(folder) ? [`${pid} ${cmdline.slice(0, 160)}`] : [];
    } catch {
      return [];
    }
  });
}

/** Runs a command to its end, its output captured; rejects past `limitMs`. */
function run(command, args, options) {
  return new Promise((resolve) => {
    const child = spawn(command, args, { ...options, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (d) => (output += d));
    child.stderr.on('data', (d) => (output += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), options.limitMs);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code: code ?? signal, output });
    });
  });
}

/** `npm start` in its own process group, until the demo finishes; then SIGINT to the group, as a terminal's Ctrl-C. */
function startAndStop(cwd, env) {
  return new Promise((resolve) => {
    const started = Date.now();
    const child = spawn('npm', ['start'], { cwd, env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    let finishedAt;
    let demo;
    const stop = (why) => {
      if (why) demo = { failed: why };
      try {
        process.kill(-child.pid, 'SIGINT');
      } catch {
        // already gone
      }
      stopTimer = setTimeout(() => process.kill(-child.pid, 'SIGKILL'), STOP_LIMIT_MS);
    };
    let stopTimer;
    const demoTimer = setTimeout(() => stop(`no "demo finished" within ${seconds(DEMO_LIMIT_MS)}`), DEMO_LIMIT_MS);
    const onData = (chunk) => {
      output += chunk;
      if (demo) return;
      const done = /demo finished in ([\d.]+) s/.exec(output);
      const failed = /demo failed: .*/.exec(output);
      if (done || failed) {
        clearTimeout(demoTimer);
        finishedAt = Date.now();
        if (failed) return stop(failed[0]);
        demo = { seconds: Number(done[1]) };
        stop();
      }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.on('close', (code, signal) => {
      clearTimeout(demoTimer);
      clearTimeout(stopTimer);
      resolve({ code: code ?? signal, output, demo, startMs: (finishedAt ?? Date.now()) - started, stopMs: finishedAt ? Date.now() - finishedAt : 0 });
    });
  });
}

const dir = mkdtempSync(path.join(os.tmpdir(), 'avatar-fleet-fresh-'));
// As root, the embedded PostgreSQL runs as the `postgres` user, which must be able to enter the clone.
chmodSync(dir, 0o755);
const clone = path.join(dir, 'avatar-fleet');
try {
  const head = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: root, encoding: 'utf8' }).trim();
  execFileSync('git', ['clone', '--quiet', root, clone]);
  say(`cloned ${head} into ${clone}`);
  const env = await newUserEnv();

  let at = Date.now();
  const install = await run('npm', ['ci', '--no-audit', '--no-fund'], { cwd: clone, env, limitMs: INSTALL_LIMIT_MS });
  const warned = install.output.split('\n').filter((line) => FIXED_WARNINGS.some((warning) => warning.test(line)));
  if (install.code !== 0) fail(`npm ci exited with ${install.code}`, install.output);
  else if (warned.length) fail(`npm ci printed warnings fixed before:\n  ${warned.join('\n  ')}`);
  else say(`npm ci: ${seconds(Date.now() - at)}, no warnings of the kinds fixed before`);

  if (!process.exitCode) {
    at = Date.now();
    const start = await startAndStop(clone, env);
    const errors = start.output.split('\n').filter((line) => /\bERROR\b/.test(line));
    if (start.demo?.failed) fail(start.demo.failed, start.output);
    else if (!start.demo) fail(`npm start ended (${start.code}) before the demo finished`, start.output);
    // npm itself dies of the SIGINT (as in a terminal); what it ran must stop on its own, cleanly.
    else if (![0, 'SIGINT', 130].includes(start.code)) fail(`npm start exited with ${start.code} after SIGINT`, start.output);
    else if (leftovers(clone).length) fail(`processes left running after the stop:\n  ${leftovers(clone).join('\n  ')}`, start.output);
    else if (errors.length) fail(`ERROR lines in the log:\n  ${errors.join('\n  ')}`, start.output);
    else say(`npm start: demo finished ${seconds(start.startMs)} after start (the demo itself ${start.demo.seconds} s, build and start-up included before it); clean stop in ${seconds(start.stopMs)}`);
  }
} finally {
  // Whatever failed, nothing of the clone's is left running.
  for (const line of leftovers(clone)) {
    try {
      process.kill(Number(line.split(' ')[0]), 'SIGKILL');
    } catch {
      // gone meanwhile
    }
  }
  if (keep) say(`clone kept at ${clone}`);
  else rmSync(dir, { recursive: true, force: true });
}
say(process.exitCode ? 'failed' : 'passed');
