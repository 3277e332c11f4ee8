import { Injectable, type OnApplicationShutdown, type OnModuleInit } from '@nestjs/common';
import { Pool, type PoolClient } from 'pg';
import { DataSource } from 'typeorm';
import { surviveDroppedConnection } from './connection-errors';
import { NotifyListener } from './notify-listener';

/** The raw pg pools, and this process's LISTEN connection. */
@Injectable()
export class Database implements OnModuleInit, OnApplicationShutdown {
  /** Commits wait for the WAL flush: everything the product may see or a worker may act on for good. */
  readonly pool: Pool;
  /**
   * Commits return before the WAL flush (synchronous_commit = off), for writes whose loss in a
   * database crash is harmless: claims, lease renewals and progress. A claim lost that way leaves
   * its job queued; the worker that got it holds a lease token the database never kept, so every
   * write it makes is refused as stale (409) and its next heartbeat reports the lease lost. Saves
   * a disk flush on the enqueue-to-claim path.
   */
  readonly relaxed: Pool;
  /**
   * Relaxed commits too, for the batched heartbeat statement alone, with generic plans: left to
   * choose, PostgreSQL re-plans that statement for every execution, and planning costs three times
   * what running it does (0.64 vs 0.14 ms of server CPU for a batch of one).
   */
  readonly heartbeats: Pool;
  readonly listener: NotifyListener;

  constructor(dataSource: DataSource) {
    // TypeORM's postgres driver keeps its pg.Pool as `master`; hot paths use it directly (prepared, batched SQL).
    this.pool = (dataSource.driver as unknown as { master: Pool }).master;
    const options = dataSource.options as { url?: string; extra?: { max?: number } };
    this.relaxed = relaxedPool(options.url!, Math.max(2, Math.ceil((options.extra?.max ?? 16) / 2)));
    this.heartbeats = relaxedPool(options.url!, 2, '-c plan_cache_mode=force_generic_plan');
    this.listener = new NotifyListener(options.url!);
  }

  /** Runs `work` in one transaction; single statements use the pool directly (they commit on their own). */
  async transaction<T>(work: (client: PoolClient) => Promise<T>): Promise<T> {
    const client = await this.pool.connect();
    let broken = false;
    try {
      await client.query('BEGIN');
      const result = await work(client);
      await client.query('COMMIT');
      return result;
    } catch (error) {
      await client.query('ROLLBACK').catch(() => (broken = true));
      throw error;
    } finally {
      client.release(broken);
    }
  }

  async onModuleInit(): Promise<void> {
    await this.listener.start();
  }

  async onApplicationShutdown(): Promise<void> {
    await this.listener.stop();
    await this.relaxed.end();
    await this.heartbeats.end();
  }
}

function relaxedPool(url: string, max: number, settings = ''): Pool {
  const pool = new Pool({
    connectionString: url,
    max,
    options: `-c synchronous_commit=off ${settings}`.trim(),
    application_name: 'avatar-fleet',
    onConnect: surviveDroppedConnection,
  });
  // An idle connection dropped by a database restart must not crash the process.
  pool.on('error', () => undefined);
  return pool;
}
