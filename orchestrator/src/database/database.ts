import { Injectable, type OnApplicationShutdown, type OnModuleInit } from '@nestjs/common';
import type { Pool } from 'pg';
import { DataSource } from 'typeorm';
import { GroupCommit } from './group-commit';
import { NotifyListener } from './notify-listener';

/** The raw pg pool under TypeORM, the group-commit executor, and this process's LISTEN connection. */
@Injectable()
export class Database implements OnModuleInit, OnApplicationShutdown {
  readonly pool: Pool;
  readonly tx: GroupCommit;
  readonly listener: NotifyListener;

  constructor(dataSource: DataSource) {
    // TypeORM's postgres driver keeps its pg.Pool as `master`; hot paths use it directly (prepared, batched SQL).
    this.pool = (dataSource.driver as unknown as { master: Pool }).master;
    this.tx = new GroupCommit(this.pool, { maxBatch: 64, maxInFlight: 2 });
    const options = dataSource.options as { url?: string };
    this.listener = new NotifyListener(options.url!);
  }

  async onModuleInit(): Promise<void> {
    await this.listener.start();
  }

  async onApplicationShutdown(): Promise<void> {
    await this.listener.stop();
  }
}
