import { appendFileSync } from 'node:fs';

/** An attempt as a worker holds it: the fencing pair the orchestrator issued with the lease. */
export interface Fence {
  jobId: string;
  attempt: number;
  leaseToken: string;
}

/**
 * What the simulation saw happen, each stamped with the wall clock (ms since the epoch) of the
 * machine every process shares, so it lines up with the database's now(). Workers report what
 * they sent and what the orchestrator answered; the driver reports what it did to processes.
 * The audit treats none of it as truth about jobs: it checks it against the database.
 */
export type SimEvent =
  | { type: 'registered'; at: number; workerId: string }
  | { type: 'claimed'; at: number; workerId: string; fence: Fence }
  /** A final status the orchestrator accepted (200); `sentAt` is when the first try left. */
  | { type: 'status_accepted'; at: number; sentAt: number; workerId: string; fence: Fence; status: 'completed' | 'failed'; state: string }
  /** A final status refused as stale (409): the attempt was no longer current. */
  | { type: 'status_refused'; at: number; workerId: string; fence: Fence; code: string }
  /** The worker learnt from a heartbeat or a progress answer that its lease is gone. */
  | { type: 'lease_lost'; at: number; workerId: string; fence: Fence }
  /** The worker stops beating and reporting mid-job (a freeze or a partition) until `until`. */
  | { type: 'froze'; at: number; workerId: string; fence: Fence; until: number }
  | { type: 'drained'; at: number; workerId: string }
  /** The driver SIGKILLed a worker process: every worker id it ran starts with `prefix`. */
  | { type: 'process_killed'; at: number; prefix: string }
  | { type: 'orchestrator'; at: number; action: 'started' | 'killed'; url: string }
  | { type: 'postgres_restarted'; at: number; downMs: number };

export type SimEventType = SimEvent['type'];

/** The events of one run, kept in memory for the audit and appended to a JSONL file when one is given. */
export class EventLog {
  readonly events: SimEvent[] = [];

  constructor(private readonly file?: string) {}

  add(event: SimEvent): void {
    this.events.push(event);
    if (this.file) appendFileSync(this.file, `${JSON.stringify(event)}\n`);
  }

  of<T extends SimEventType>(type: T): Extract<SimEvent, { type: T }>[] {
    return this.events.filter((e): e is Extract<SimEvent, { type: T }> => e.type === type);
  }
}
