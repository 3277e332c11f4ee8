import { Body, Controller, Get, HttpCode, Param, Post, UseGuards } from '@nestjs/common';
import { ApiBearerAuth, ApiBody, ApiOperation, ApiTags } from '@nestjs/swagger';
import { WORKER_ID_PATTERN, WorkerCommandRequest, type WorkerView } from '@avatar-fleet/contracts';
import { ApiError } from '../common/api-error';
import { ApiKeyGuard } from '../common/auth.guard';
import { DtoPipe } from '../common/dto.pipe';
import { schemaRef } from '../observability/openapi';
import { FleetService } from './fleet.service';

/** Operators' view of the fleet through the product API. */
@ApiTags('workers')
@ApiBearerAuth()
@UseGuards(ApiKeyGuard)
@Controller('v1/workers')
export class WorkersController {
  constructor(private readonly fleet: FleetService) {}

  @Get()
  @ApiOperation({ summary: 'Registered workers with state, heartbeat, telemetry and running jobs' })
  list(): Promise<WorkerView[]> {
    return this.fleet.list();
  }

  @Post(':id/command')
  @HttpCode(200)
  @ApiOperation({ summary: 'Send drain or shutdown in the worker\'s next heartbeat reply (none clears it)' })
  @ApiBody({ schema: schemaRef('WorkerCommandRequest') })
  command(@Param('id') id: string, @Body(new DtoPipe(WorkerCommandRequest)) body: WorkerCommandRequest): Promise<WorkerView> {
    if (!WORKER_ID_PATTERN.test(id)) throw ApiError.validation([{ field: 'id', problems: ['id must be a worker id'] }]);
    return this.fleet.command(id, body.command);
  }
}
