import { percentile, round } from '@avatar-fleet/bench/dist/lib/stats';
import type { AuditReport } from './audit';
import type { ScenarioResult } from './scenario';

const list = (counts: Record<string, number>) => Object.entries(counts).sort(([, a], [, b]) => b - a).map(([k, n]) => `${k} ${n}`).join(', ');

/** p50 / p95 / max of a list of seconds, one decimal. */
function spread(values: number[]): string {
  if (!values.length) return 'none';
  const at = (q: number) => round(percentile(values, q), 1);
  return `p50 ${at(0.5)} s, p95 ${at(0.95)} s, max ${round(Math.max(...values), 1)} s (${values.length})`;
}

export function requeueSeconds(report: AuditReport): number[] {
  return report.recoveries.map((r) => r.requeueSec);
}

/** The run's summary, for people: what happened to the jobs, and how recovery went. */
export function summaryLines(result: ScenarioResult): string[] {
  const r = result.report;
  const finished = r.recoveries.flatMap((x) => (x.finishSec === null ? [] : [x.finishSec]));
  const lines = [
    `summary after ${round(result.seconds, 0)} s (event log and orchestrator logs in ${result.dir})`,
    `  jobs: ${r.jobs} (${list(r.byState)})`,
    `  attempts: ${r.attempts} (${list(r.outcomes)})`,
    `  lease losses: ${r.leaseLosses}; stale final statuses refused: ${r.staleRefused}; claims the database does not know (lost in its crash): ${r.phantomClaims}`,
    `  duplicate accepted completions: ${r.doubleAccepted}`,
    `  worker deaths: ${result.kills} process SIGKILLs, ${result.freezes} frozen workers; drains: ${result.drains}; attempts taken back: ${r.recoveries.length}`,
    `  death -> requeued: ${spread(requeueSeconds(r))}`,
    `  death -> finished by a later attempt: ${spread(finished)}`,
  ];
  if (result.split.length > 1) lines.push(`  balancer connections per replica: ${result.split.join(' / ')}`);
  for (const failure of result.startFailures) lines.push(`  an orchestrator start failed and was tried again: ${failure.split('\n')[0]}`);
  lines.push(r.violations.length ? `  VIOLATIONS: ${r.violations.length}` : '  violations: none');
  for (const v of r.violations.slice(0, 20)) lines.push(`    ${v.kind}${v.jobId ? ` ${v.jobId}` : ''}: ${v.detail}`);
  return lines;
}

/** The machine-readable last line of `npm run chaos`. */
export function chaosLine(r: AuditReport): string {
  const requeue = requeueSeconds(r);
  const lost = r.violations.filter((v) => v.kind === 'lost').length;
  const p95 = requeue.length ? round(percentile(requeue, 0.95), 1) : 0;
  const max = requeue.length ? round(Math.max(...requeue), 1) : 0;
  return `chaos jobs=${r.jobs} lost=${lost} double_accepted=${r.doubleAccepted} requeue_p95_s=${p95} requeue_max_s=${max}`;
}
