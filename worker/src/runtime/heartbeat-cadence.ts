/**
 * The heartbeat's timing, apart from any clock: each beat is due one interval after the previous
 * one *started* (a slow reply does not push every later beat back), and a gap between starts more
 * than 20 % off the interval is reported as drift (a starved thread, or a slow orchestrator).
 */
export class BeatCadence {
  private lastStart: number | undefined;

  constructor(
    readonly intervalMs: number,
    private readonly driftLimit = 0.2,
  ) {}

  /** A beat starts at `now`; returns the drift when the gap since the previous start is too far off. */
  started(now: number): { expectedMs: number; actualMs: number } | undefined {
    const previous = this.lastStart;
    this.lastStart = now;
    if (previous === undefined) return undefined;
    const gap = now - previous;
    return Math.abs(gap - this.intervalMs) > this.intervalMs * this.driftLimit ? { expectedMs: this.intervalMs, actualMs: Math.round(gap) } : undefined;
  }

  /** How long to wait at `now` before the next beat: what is left of the interval since the last start. */
  delay(now: number): number {
    return Math.max(0, this.intervalMs - (now - (this.lastStart ?? now)));
  }
}
