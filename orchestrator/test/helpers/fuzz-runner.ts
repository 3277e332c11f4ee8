/**
 * Sends the fuzzer's hostile requests to a running orchestrator, one at a time, and judges each
 * answer: no 5xx, an answer at all (and a live process), a 4xx body that names what is wrong, no
 * secret in the answer, and no change to the jobs, job_attempts and workers tables when the
 * request was refused. Requests go one at a time so that a change can be pinned on one request.
 */
import http from 'node:http';
import net from 'node:net';
import type { Pool } from 'pg';
import { ErrorCode } from '@avatar-fleet/contracts';
import { ENDPOINTS, type Endpoint, type FuzzWorld } from './fuzz-endpoints';
import { hostileRequest, type FuzzRequest, type Keys } from './fuzz-requests';
import { Rng } from './fuzz-values';

export interface FuzzTarget {
  url: string;
  pool: Pool;
  world: FuzzWorld;
  keys: Keys;
  /** Every value that must never appear in an answer or a log line. */
  secrets: string[];
  alive(): boolean;
  /** Everything the processes under test printed so far. */
  output(): string;
  /** The error codes a 4xx may carry; the fleet's ErrorCode when absent. */
  codes?: ReadonlySet<string>;
}

export interface FuzzOptions {
  seed: number;
  perEndpoint: number;
  /** The orchestrator's BODY_LIMIT_BYTES: bodies around it are generated. */
  bodyLimit: number;
  /** Only the endpoints whose name contains this (to repeat a failure). */
  only?: string;
  log?(line: string): void;
}

export interface FuzzReport {
  requests: number;
  status5xx: number;
  crashes: number;
  stateChanges: number;
  leakedSecrets: number;
  /** 4xx answers that do not say what is wrong, and requests the server dropped without an answer. */
  unnamed4xx: number;
  noAnswer: number;
  /** The first few failures of each kind, for the report. */
  failures: string[];
}

export interface Answer {
  status: number;
  head: string;
  body: Buffer;
}

const TIMEOUT_MS = 30_000;
const FLEET_CODES: ReadonlySet<string> = new Set<string>(Object.values(ErrorCode));
const TABLES = { jobs: 't.id', job_attempts: 't.job_id, t.attempt', workers: 't.id' };
/** One digest per table over every row: a refused request must leave all three as they were. */
const SNAPSHOT_SQL = `SELECT ${Object.entries(TABLES).map(([table, key]) => `(SELECT md5(coalesce(string_agg(t::text, ',' ORDER BY ${key}), '')) FROM ${table} t) AS ${table}`).join(', ')}`;

/** The tables whose digests differ. */
function changedTables(before: Record<string, string>, after: Record<string, string>): string[] {
  return Object.keys(TABLES).filter((table) => before[table] !== after[table]);
}

function sendHttp(url: URL, agent: http.Agent, req: FuzzRequest): Promise<Answer | { error: string; refused?: boolean }> {
  return new Promise((resolve) => {
    let request: http.ClientRequest;
    try {
      const length = req.body ? { 'content-length': String(req.body.length) } : {};
      request = http.request({ host: url.hostname, port: url.port, method: req.method, path: req.path, headers: { ...req.headers, ...length }, agent });
    } catch (error) {
      // Node's client will not send it (a character it refuses in a header or the path): nothing was sent.
      resolve({ error: (error as Error).message, refused: true });
      return;
    }
    request.setTimeout(TIMEOUT_MS, () => request.destroy(new Error(`no answer in ${TIMEOUT_MS} ms`)));
    request.on('response', (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, head: res.rawHeaders.join('\n'), body: Buffer.concat(chunks) }));
      res.on('error', (error) => resolve({ error: error.message }));
    });
    request.on('error', (error) => resolve({ error: error.message }));
    request.end(req.body);
  });
}

/** The first response in `data`, a whole HTTP/1.1 exchange read off a raw socket. */
function parseRaw(data: Buffer): Answer | { error: string } {
  const end = data.indexOf('\r\n\r\n');
  const match = /^HTTP\/1\.[01] (\d{3})/.exec(data.subarray(0, 20).toString('latin1'));
  if (end < 0 || !match) return { error: data.length ? `not an HTTP answer: ${JSON.stringify(data.subarray(0, 80).toString('latin1'))}` : 'connection closed without an answer' };
  const head = data.subarray(0, end).toString('latin1');
  let body = data.subarray(end + 4);
  const length = /\r\ncontent-length: *(\d+)/i.exec(head);
  if (length) body = body.subarray(0, Number(length[1]));
  else if (/\r\ntransfer-encoding: *chunked/i.test(head)) {
    const parts: Buffer[] = [];
    for (let at = 0; ;) {
      const eol = body.indexOf('\r\n', at);
      const size = eol < 0 ? 0 : parseInt(body.subarray(at, eol).toString('latin1'), 16);
      if (!size) break;
      parts.push(body.subarray(eol + 2, eol + 2 + size));
      at = eol + 2 + size + 2;
    }
    body = Buffer.concat(parts);
  }
  return { status: Number(match[1]), head, body };
}

/** Writes `bytes` on a fresh connection and reads the answer, even one sent before all of them were read. */
export function sendRaw(url: URL, bytes: Buffer): Promise<Answer | { error: string }> {
  return new Promise((resolve) => {
    const socket = net.connect(Number(url.port), url.hostname);
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => socket.destroy(), TIMEOUT_MS);
    socket.on('connect', () => socket.write(bytes));
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('error', () => undefined); // 'close' follows and reports what was read
    socket.on('close', () => {
      clearTimeout(timer);
      resolve(parseRaw(Buffer.concat(chunks)));
    });
  });
}

function jsonOrNull(body: Buffer): unknown {
  try {
    return JSON.parse(body.toString('utf8'));
  } catch {
    return null;
  }
}

/** A field named in a 400 matches a blamed one when either contains the other (`input` and `input.audio`). */
function sameField(named: string, blamed: string): boolean {
  return named === blamed || named.startsWith(`${blamed}.`) || blamed.startsWith(`${named}.`);
}

/** Why a 4xx answer does not say what is wrong, or null when it does. */
export function unnamedProblem(answer: Answer, req: FuzzRequest, codes = FLEET_CODES): string | null {
  let parsed: unknown;
  try {
    parsed = JSON.parse(answer.body.toString('utf8'));
  } catch {
    return 'the body is not JSON';
  }
  const error = (parsed as { error?: { code?: unknown; message?: unknown; fields?: { field: string; problems: string[] }[] } } | null)?.error;
  if (!error || typeof error.code !== 'string' || !codes.has(error.code)) return 'no known error.code';
  if (typeof error.message !== 'string' || error.message.trim().length < 8) return 'no error.message';
  if (answer.status === 401) return /authorization|x-api-key/i.test(error.message) ? null : 'the 401 message names neither header';
  if (answer.status !== 400 && answer.status !== 413 && answer.status !== 415) return null;
  const fields = error.fields ?? [];
  if (!fields.length) return 'no error.fields';
  // `(body)`, `(path)`, `(request)`: the message names the part (`body`, ...); a field, by its name.
  const message = error.message.toLowerCase();
  const named = (field: string) => message.includes(field.replace(/^\((.*)\)$/, '$1').toLowerCase());
  const silent = fields.find((f) => !named(f.field) || !f.problems?.length);
  if (silent) return `field ${JSON.stringify(silent.field)} is not in the message, or has no problem`;
  if (!req.blame.length || fields.some((f) => req.blame.some((b) => sameField(f.field, b)))) return null;
  return `names ${JSON.stringify(fields.map((f) => f.field))}, not ${JSON.stringify(req.blame)}`;
}

/** Runs `perEndpoint` hostile requests against every endpoint and reports what went wrong. */
export async function runFuzz(target: FuzzTarget, options: FuzzOptions, endpoints: readonly Endpoint[] = ENDPOINTS): Promise<FuzzReport> {
  const report: FuzzReport = { requests: 0, status5xx: 0, crashes: 0, stateChanges: 0, leakedSecrets: 0, unnamed4xx: 0, noAnswer: 0, failures: [] };
  const url = new URL(target.url);
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const snapshot = async () => (await target.pool.query<Record<string, string>>(SNAPSHOT_SQL)).rows[0]!;
  const seen = new Map<string, number>();
  const redact = (text: string) => target.secrets.reduce((t, secret) => t.split(secret).join('<secret>'), text);
  const fail = (kind: string, detail: string) => {
    const n = (seen.get(kind) ?? 0) + 1;
    seen.set(kind, n);
    if (n <= 5) report.failures.push(`${kind}: ${detail}`);
  };

  try {
    for (const [index, ep] of endpoints.entries()) {
      if (options.only && !ep.name.includes(options.only)) continue;
      const rng = new Rng(options.seed + index * 7919);
      const fixture = await ep.setup(target.world);
      const statuses = new Map<number, number>();
      let before = await snapshot();
      for (let sent = 0, tries = 0; sent < options.perEndpoint && tries < options.perEndpoint * 2; tries++) {
        const req = hostileRequest(rng, ep, fixture.valid(rng), target.world.related, target.keys, options.bodyLimit);
        const answer = req.raw ? await sendRaw(url, req.raw) : await sendHttp(url, agent, req);
        if ('refused' in answer) continue;
        sent++;
        report.requests++;
        const label = `${ep.name} #${sent} [${req.what}]`;
        if ('error' in answer) {
          if (!target.alive()) {
            report.crashes++;
            fail('crash', `${label}: a process under test exited\n${redact(target.output().slice(-2000))}`);
            return report;
          }
          report.noAnswer++;
          fail('no answer', `${label}: ${answer.error}`);
        } else {
          statuses.set(answer.status, (statuses.get(answer.status) ?? 0) + 1);
          const excerpt = answer.body.toString('utf8').slice(0, 300);
          if (answer.status >= 500) {
            report.status5xx++;
            fail('5xx', `${label} -> ${answer.status} ${excerpt}`);
          } else if (answer.status >= 400) {
            const why = unnamedProblem(answer, req, target.codes);
            if (why) {
              report.unnamed4xx++;
              fail('unnamed 4xx', `${label} -> ${answer.status}: ${why}: ${excerpt}`);
            }
          }
          const text = `${answer.head}\n${answer.body.toString('latin1')}`;
          if (target.secrets.some((s) => text.includes(s))) {
            report.leakedSecrets++;
            fail('secret in answer', `${label} -> ${answer.status}`);
          }
        }
        let after = await snapshot();
        const refused = 'error' in answer || answer.status >= 400;
        const changed = changedTables(before, after);
        if (refused && changed.length) {
          report.stateChanges++;
          fail('state change', `${label} changed ${changed.join(', ')} -> ${'error' in answer ? answer.error : `${answer.status} ${answer.body.toString('utf8').slice(0, 200)}`}`);
        }
        // A request that changed the tables may have used up the fixture (a refused one that did is counted above).
        if (fixture.renew && (!refused || changed.length)) {
          await fixture.renew('error' in answer ? null : jsonOrNull(answer.body));
          after = await snapshot();
        }
        before = after;
      }
      const counts = [...statuses].sort(([a], [b]) => a - b).map(([s, n]) => `${s}x${n}`).join(' ');
      options.log?.(`  ${ep.name.padEnd(48)} ${counts}`);
    }
  } finally {
    agent.destroy();
    const leakyLines = target.output().split('\n').filter((line) => target.secrets.some((s) => line.includes(s)));
    report.leakedSecrets += leakyLines.length;
    for (const line of leakyLines.slice(0, 3)) fail('secret in the log', redact(line).slice(0, 200));
    if (!target.alive() && report.crashes === 0) {
      report.crashes++;
      fail('crash', `a process under test exited\n${redact(target.output().slice(-2000))}`);
    }
  }
  return report;
}

/** Two runs' reports as one (the orchestrator's endpoints, then a worker's). */
export function mergeReports(a: FuzzReport, b: FuzzReport): FuzzReport {
  const sum = (key: Exclude<keyof FuzzReport, 'failures'>) => a[key] + b[key];
  return {
    requests: sum('requests'), status5xx: sum('status5xx'), crashes: sum('crashes'), stateChanges: sum('stateChanges'),
    leakedSecrets: sum('leakedSecrets'), unnamed4xx: sum('unnamed4xx'), noAnswer: sum('noAnswer'), failures: [...a.failures, ...b.failures],
  };
}

/** The machine-readable last line of `npm run fuzz`. */
export function summaryLine(r: FuzzReport): string {
  return `fuzz requests=${r.requests} status_5xx=${r.status5xx} crashes=${r.crashes} state_changes=${r.stateChanges} leaked_secrets=${r.leakedSecrets}`;
}
