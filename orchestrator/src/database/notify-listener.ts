import { Logger } from '@nestjs/common';
import { Client } from 'pg';

export const Channels = {
  /** Payload: the job kind. Sent when a job becomes claimable. */
  jobsQueued: 'fleet_jobs_queued',
  /** Payload: job ids, comma-separated. Sent when jobs reach a terminal state. */
  jobFinished: 'fleet_job_finished',
  /** Payload: a worker id. Sent when its credentials change (registered, revoked, reinstated). */
  workerCredentials: 'fleet_worker_credentials',
} as const;
export type Channel = (typeof Channels)[keyof typeof Channels];

type Handler = (payload: string) => void;

/**
 * One LISTEN connection per orchestrator process. NOTIFY is sent inside the writing transaction,
 * so listeners hear of a job only once it is committed. When the connection drops it reconnects
 * with backoff and then tells every handler `reconnected`, since notifications sent meanwhile are lost.
 */
export class NotifyListener {
  private readonly logger = new Logger(NotifyListener.name);
  private readonly handlers = new Map<Channel, Set<Handler>>();
  private readonly reconnectHandlers = new Set<() => void>();
  /** Local emits whose NOTIFY has not come back yet, by channel and payload. */
  private readonly expectedEchoes = new Map<string, number>();
  private client: Client | null = null;
  private stopped = false;
  private retryMs = 100;
  /** Why the connection is down, from when it dropped until it is listening again. */
  private down: string | null = 'not started';

  constructor(private readonly connectionString: string) {}

  on(channel: Channel, handler: Handler): void {
    let set = this.handlers.get(channel);
    if (!set) this.handlers.set(channel, (set = new Set()));
    set.add(handler);
  }

  onReconnect(handler: () => void): void {
    this.reconnectHandlers.add(handler);
  }

  /**
   * Delivers a notification to this process's handlers at once, without the round trip through
   * PostgreSQL, for a commit this process just made (the NOTIFY still reaches every replica). The
   * echo of that NOTIFY, when it comes back to this process, is then skipped: the handlers already ran.
   */
  emitLocal(channel: Channel, payload: string): void {
    const key = `${channel}:${payload}`;
    this.expectedEchoes.set(key, (this.expectedEchoes.get(key) ?? 0) + 1);
    this.deliver(channel, payload);
  }

  private fromDatabase(channel: Channel, payload: string): void {
    const key = `${channel}:${payload}`;
    const expected = this.expectedEchoes.get(key) ?? 0;
    if (expected > 0) {
      // Equal notifications are interchangeable, so skipping "one of them" is exact in count.
      if (expected === 1) this.expectedEchoes.delete(key);
      else this.expectedEchoes.set(key, expected - 1);
      return;
    }
    this.deliver(channel, payload);
  }

  private deliver(channel: Channel, payload: string): void {
    const set = this.handlers.get(channel);
    if (set) for (const handler of set) handler(payload);
  }

  /**
   * Null while this process hears notifications; otherwise why not. Without them parked claims
   * and job waits fall back to their slow polls, so a health check reports it.
   */
  downReason(): string | null {
    return this.down;
  }

  async start(): Promise<void> {
    await this.connect();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.down = 'stopped';
    const client = this.client;
    this.client = null;
    await client?.end().catch(() => undefined);
  }

  private async connect(): Promise<void> {
    const client = new Client({ connectionString: this.connectionString });
    client.on('notification', (msg) => this.fromDatabase(msg.channel as Channel, msg.payload ?? ''));
    let lastError = 'the connection closed';
    client.on('error', (err) => {
      lastError = err.message;
      this.logger.warn(`LISTEN connection error: ${err.message}`);
    });
    client.on('end', () => {
      if (this.client === client) {
        this.client = null;
        this.down = `LISTEN connection lost (${lastError}); reconnecting`;
        this.scheduleReconnect();
      }
    });
    await client.connect();
    for (const channel of Object.values(Channels)) await client.query(`LISTEN ${channel}`);
    this.client = client;
    this.down = null;
    this.retryMs = 100;
  }

  private scheduleReconnect(): void {
    if (this.stopped) return;
    const delay = this.retryMs;
    this.retryMs = Math.min(this.retryMs * 2, 5_000);
    setTimeout(() => {
      if (this.stopped) return;
      this.connect().then(
        () => {
          this.logger.log('LISTEN connection restored');
          // Echoes sent while the connection was down are lost; handlers are told to re-check anyway.
          this.expectedEchoes.clear();
          for (const handler of this.reconnectHandlers) handler();
        },
        (err: Error) => {
          this.down = `LISTEN connection lost; reconnect failed (${err.message}); retrying`;
          this.logger.warn(`LISTEN reconnect failed: ${err.message}`);
          this.scheduleReconnect();
        },
      );
    }, delay).unref();
  }
}
