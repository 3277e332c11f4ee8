/**
 * Buffers of one size (frames, patches) handed out again once their user is done with them: a
 * fresh buffer per frame costs page faults on first touch and garbage collection of the old ones,
 * which took more CPU than filling it did. Giving a buffer back is optional; one never given back
 * is simply collected.
 */
export class FramePool {
  private readonly free: Buffer[] = [];

  /** `keep`: the most buffers held while unused; more are left to the garbage collector. */
  constructor(
    readonly frameBytes: number,
    private readonly keep = 64,
  ) {}

  /** A buffer of frameBytes, with whatever it held before: the caller fills it whole. */
  take(): Buffer {
    return this.free.pop() ?? Buffer.allocUnsafeSlow(this.frameBytes);
  }

  /** The caller holds no reference to `frame` any more (nor does anything it passed it to). */
  give(frame: Buffer): void {
    if (frame.length === this.frameBytes && this.free.length < this.keep) this.free.push(frame);
  }
}
