/**
 * A buffer-mode worker written from seed 003 alone, the way the old Python worker talks: it knows
 * the three paths, the seed's environment (ORCHESTRATOR_BASE_URL, INTERNAL_API_KEY,
 * BUFFER_WORKER_ID, GPU_CLASS_NAME), snake_case bodies, and nothing of this fleet's own protocol.
 * It never registers, lists no leases in its heartbeats, and echoes back what the claim answer
 * told it to. Runs one job, then exits; prints one JSON line per step. Extra knobs for tests:
 * HEARTBEAT_MS (the seed's 10 s otherwise) and JOB_MS (how long the "inference" takes).
 */
const env = process.env;
const base = env.ORCHESTRATOR_BASE_URL!.replace(/\/+$/, '');
const workerId = env.BUFFER_WORKER_ID!;
const headers = { Authorization: `Bearer ${env.INTERNAL_API_KEY}`, 'Content-Type': 'application/json' };

function say(step: string, detail: Record<string, unknown> = {}): void {
  process.stdout.write(`${JSON.stringify({ step, ...detail })}\n`);
}

async function post(path: string, body: unknown): Promise<{ status: number; body: any; reason: string | null }> {
  const res = await fetch(`${base}${path}`, { method: 'POST', headers, body: JSON.stringify(body) });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : null, reason: res.headers.get('x-no-job-reason') };
}

async function heartbeat(): Promise<void> {
  const res = await post(`/internal/buffer/workers/${workerId}/heartbeat`, { gpu_class_name: env.GPU_CLASS_NAME });
  say('heartbeat', { status: res.status, lost: res.body?.lost, renewed: res.body?.renewed });
}

async function main(): Promise<void> {
  await heartbeat();
  const beats = setInterval(() => void heartbeat(), Number(env.HEARTBEAT_MS ?? 10_000));
  try {
    let claim = await post('/internal/buffer/jobs/claim', { worker_id: workerId, wait_ms: 20_000 });
    while (claim.status === 204) {
      say('no job', { reason: claim.reason });
      claim = await post('/internal/buffer/jobs/claim', { worker_id: workerId, wait_ms: 20_000 });
    }
    if (claim.status !== 200) throw new Error(`claim answered ${claim.status}: ${JSON.stringify(claim.body)}`);
    const job = claim.body.job;
    say('claimed', { job_id: job.id, attempt: job.attempt, input: job.input });
    const echo = { attempt: job.attempt, lease_token: job.leaseToken };
    const running = await post(`/internal/buffer/jobs/${job.id}/status`, { status: 'running', ...echo });
    say('running', { status: running.status });
    await new Promise((resolve) => setTimeout(resolve, Number(env.JOB_MS ?? 1000)));
    const result = { video_url: `b2://talking-avatar/results/${job.id}.mp4`, duration_sec: 2.5 };
    const done = await post(`/internal/buffer/jobs/${job.id}/status`, { status: 'completed', ...echo, result });
    say('completed', { status: done.status, body: done.body });
  } finally {
    clearInterval(beats);
  }
}

main().catch((error: Error) => {
  say('error', { message: error.message });
  process.exitCode = 1;
});
