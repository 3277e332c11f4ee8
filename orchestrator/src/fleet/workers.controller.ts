import { Body, Controller, Get, HttpCode, Param, Post, UseGuards } from '@nestjs/common';
import { ApiBearerAuth, ApiBody, ApiOperation, ApiTags } from '@nestjs/swagger';
import { WORKER_ID_PATTERN, WorkerCommandRequest, type WorkerView } from '@avatar-fleet/contracts';
import { Allow, AuthGuard } from '../auth/auth.guard';
import { ApiError } from '../common/api-error';
import { DtoPipe } from '../common/dto.pipe';
import { schemaRef } from '../observability/openapi';
import { FleetService } from './fleet.service';

function workerId(id: string): string {
  if (!WORKER_ID_PATTERN.test(id)) throw ApiError.validation([{ field: 'id', problems: ['id must be a worker id'] }]);
  return id;
}

/** Operators' view and control of the fleet: operator keys (OPERATOR_KEYS) only. */
@ApiTags('workers')
@ApiBearerAuth()
@UseGuards(AuthGuard)
@Allow('operator')
@Controller('v1/workers')
export class WorkersController {
  constructor(private readonly fleet: FleetService) {}

  @Get()
  @ApiOperation({ summary: 'Registered workers with state, heartbeat, telemetry, running jobs and credentials' })
  list(): Promise<WorkerView[]> {
    return this.fleet.list();
  }

  @Post(':id/command')
  @HttpCode(200)
  @ApiOperation({ summary: 'Send drain or shutdown in the worker\'s next heartbeat reply (none clears it)' })
  @ApiBody({ schema: schemaRef('WorkerCommandRequest') })
  command(@Param('id') id: string, @Body(new DtoPipe(WorkerCommandRequest)) body: WorkerCommandRequest): Promise<WorkerView> {
    return this.fleet.command(workerId(id), body.command);
  }

  @Post(':id/revoke')
  @HttpCode(200)
  @ApiOperation({ summary: 'Revoke: the worker is stopped, its token refused, its jobs requeued, and its id barred until reinstated' })
  revoke(@Param('id') id: string): Promise<WorkerView> {
    return this.fleet.revoke(workerId(id));
  }

  @Post(':id/reinstate')
  @HttpCode(200)
  @ApiOperation({ summary: 'Lift a revocation; the worker comes back by registering anew' })
  reinstate(@Param('id') id: string): Promise<WorkerView> {
    return this.fleet.reinstate(workerId(id));
  }
}
