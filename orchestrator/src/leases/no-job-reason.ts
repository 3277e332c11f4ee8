import type { Queryable, WorkerCaps } from './lease.repository';

/** How many queued jobs of its kinds a 204 looks at to say why none fits the worker. */
const SAMPLE = 200;

/**
 * Why a claim found nothing for the worker, in words a host's log can show: a worker registered
 * without VRAM, or with a GPU class no job asks for, otherwise waits out long polls forever without
 * learning why. Looks at the first SAMPLE queued jobs of its kinds, in claim order, through the
 * claim index; it runs only for a claim that ended empty, and callers cache it per capabilities.
 */
export async function pendingCommand(db: Queryable, workerId: string): Promise<string | null> {
  const { rows } = await db.query({ name: 'worker-command', text: `SELECT command FROM workers WHERE id = $1`, values: [workerId] });
  const command = rows[0]?.command as string | null | undefined;
  return command ? `worker ${workerId} was told to ${command}: it gets no new jobs (an operator clears it with command "none")` : null;
}


export async function explainNoJob(db: Queryable, caps: WorkerCaps): Promise<string> {
  const { rows } = await db.query({
    name: 'no-job-sample',
    text: `SELECT gpu_class, min_vram_gb, run_after, run_after > now() AS later FROM jobs
           WHERE state = 'queued' AND kind = ANY ($1::text[])
           ORDER BY priority DESC, run_after, kind, coalesce(gpu_class, ''), id LIMIT ${SAMPLE}`,
    values: [caps.kinds],
  });
  const kinds = caps.kinds.join(', ');
  if (rows.length === 0) return `no job of kind ${kinds} is queued`;
  const classes = new Set<string>();
  let otherClass = 0;
  let moreVram = 0;
  let mostVram = 0;
  let later = 0;
  let firstLater: Date | null = null;
  for (const r of rows) {
    if (r.gpu_class !== null && r.gpu_class !== caps.gpuClass) {
      otherClass++;
      classes.add(r.gpu_class);
    } else if (r.min_vram_gb > caps.vramGb) {
      moreVram++;
      mostVram = Math.max(mostVram, r.min_vram_gb);
    } else if (r.later) {
      later++;
      if (!firstLater || r.run_after < firstLater) firstLater = r.run_after;
    }
  }
  const taken = rows.length - otherClass - moreVram - later;
  const parts: string[] = [];
  if (otherClass) parts.push(`${otherClass} need gpu class ${[...classes].slice(0, 3).map((c) => JSON.stringify(c)).join(' or ')}${classes.size > 3 ? ' or others' : ''}`);
  if (moreVram) {
    parts.push(`${moreVram} need up to ${mostVram} GB of VRAM (register vramGb, or a GPU_CLASS_NAME such as "RTX 3090 (24 GB)")`);
  }
  if (later) parts.push(`${later} are backing off after failures, the first until ${firstLater!.toISOString()}`);
  if (taken) parts.push(`${taken} fit but other workers claimed them first`);
  const counted = rows.length === SAMPLE ? `the first ${SAMPLE}` : `the ${rows.length}`;
  const text = `none of ${counted} queued job(s) of kind ${kinds} fits this worker ` +
    `(gpu class ${caps.gpuClass === null ? 'none' : JSON.stringify(caps.gpuClass)}, ${caps.vramGb} GB of VRAM): ${parts.join('; ')}`;
  // An HTTP header holds printable ASCII only; GPU class names are the workers' own text.
  return text.replace(/[^\x20-\x7e]/g, '?');
}
