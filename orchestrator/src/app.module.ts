import { Module, type DynamicModule } from '@nestjs/common';
import { APP_FILTER } from '@nestjs/core';
import { ScheduleModule } from '@nestjs/schedule';
import { TerminusModule } from '@nestjs/terminus';
import { TypeOrmModule } from '@nestjs/typeorm';
import { AuthGuard } from './auth/auth.guard';
import { CredentialsService } from './auth/credentials.service';
import { ErrorFilter } from './common/error.filter';
import { OrchestratorConfig } from './config/orchestrator.config';
import { Database } from './database/database';
import { dataSourceOptions } from './database/migrate';
import { FleetController } from './fleet/fleet.controller';
import { FleetService } from './fleet/fleet.service';
import { ReaperService } from './fleet/reaper.service';
import { RetentionService } from './fleet/retention.service';
import { WorkerAccess } from './fleet/worker-access';
import { WorkerRepository } from './fleet/worker.repository';
import { WorkersController } from './fleet/workers.controller';
import { JobRepository } from './jobs/job.repository';
import { JobsController } from './jobs/jobs.controller';
import { JobsService } from './jobs/jobs.service';
import { LeaseExpiryRepository } from './leases/lease-expiry.repository';
import { LeaseRepository } from './leases/lease.repository';
import { LeasesController } from './leases/leases.controller';
import { LeasesService } from './leases/leases.service';
import { MetricsService } from './observability/metrics.service';
import { OpsController } from './observability/ops.controller';

@Module({})
export class AppModule {
  /** `databaseUrl` is the resolved one: DATABASE_URL, or the embedded server's. */
  static forRoot(config: OrchestratorConfig, databaseUrl: string): DynamicModule {
    return {
      module: AppModule,
      imports: [
        TypeOrmModule.forRoot(dataSourceOptions(databaseUrl, config.DB_POOL_SIZE)),
        ScheduleModule.forRoot(),
        TerminusModule.forRoot({ logger: false }),
      ],
      controllers: [JobsController, WorkersController, FleetController, LeasesController, OpsController],
      providers: [
        { provide: OrchestratorConfig, useValue: config },
        { provide: APP_FILTER, useClass: ErrorFilter },
        { provide: JobRepository, useValue: new JobRepository() },
        { provide: LeaseRepository, useValue: new LeaseRepository() },
        { provide: LeaseExpiryRepository, useValue: new LeaseExpiryRepository() },
        { provide: WorkerRepository, useValue: new WorkerRepository() },
        Database,
        AuthGuard,
        CredentialsService,
        WorkerAccess,
        MetricsService,
        JobsService,
        LeasesService,
        FleetService,
        ReaperService,
        RetentionService,
      ],
    };
  }
}
