import { Injectable, type OnApplicationShutdown, type OnModuleInit } from '@nestjs/common';
import type { Pool, PoolClient } from 'pg';
import { DataSource } from 'typeorm';
import { NotifyListener } from './notify-listener';

/** The raw pg pool under TypeORM, and this process's LISTEN connection. */
@Injectable()
export class Database implements OnModuleInit, OnApplicationShutdown {
  readonly pool: Pool;
  readonly listener: NotifyListener;

  constructor(dataSource: DataSource) {
    // TypeORM's postgres driver keeps its pg.Pool as `master`; hot paths use it directly (prepared, batched SQL).
    this.pool = (dataSource.driver as unknown as { master: Pool }).master;
    const options = dataSource.options as { url?: string };
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
  }
}
