import { Controller, Get, Header, UseGuards } from '@nestjs/common';
import { ApiExcludeEndpoint, ApiTags } from '@nestjs/swagger';
import {
  HealthCheck, HealthCheckService, HealthIndicatorService, TypeOrmHealthIndicator, type HealthCheckResult, type HealthIndicatorResult,
} from '@nestjs/terminus';
import { Allow, AuthGuard } from '../auth/auth.guard';
import { Database } from '../database/database';
import { MetricsService } from './metrics.service';

/** The health probe is unauthenticated (keep it free of anything secret); metrics need an operator key. */
@ApiTags('ops')
@Controller()
export class OpsController {
  constructor(
    private readonly health: HealthCheckService,
    private readonly database: TypeOrmHealthIndicator,
    private readonly indicators: HealthIndicatorService,
    private readonly db: Database,
    private readonly metrics: MetricsService,
  ) {}

  /** 503 when the database does not answer, or when this process no longer hears its notifications. */
  @Get('health')
  @HealthCheck()
  check(): Promise<HealthCheckResult> {
    return this.health.check([() => this.database.pingCheck('database', { timeout: 2000 }), () => this.notifications()]);
  }

  private notifications(): HealthIndicatorResult {
    const down = this.db.listener.downReason();
    const indicator = this.indicators.check('notifications');
    return down ? indicator.down({ message: down }) : indicator.up();
  }

  /** Every tenant's counts and the fleet's shape: operators only (Prometheus sends the key as a bearer token). */
  @Get('metrics')
  @UseGuards(AuthGuard)
  @Allow('operator')
  @ApiExcludeEndpoint()
  @Header('Content-Type', 'text/plain; version=0.0.4')
  scrape(): Promise<string> {
    return this.metrics.registry.metrics();
  }
}
