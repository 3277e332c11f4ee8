import { Body, Controller, HttpCode, Param, Post, UseGuards } from '@nestjs/common';
import { ApiBearerAuth, ApiBody, ApiOperation, ApiTags } from '@nestjs/swagger';
import {
  DeregisterRequest, HeartbeatRequest, RegisterWorkerRequest, WORKER_ID_PATTERN,
  type DeregisterResponse, type HeartbeatResponse, type RegisterWorkerResponse,
} from '@avatar-fleet/contracts';
import { ApiError } from '../common/api-error';
import { InternalKeyGuard } from '../common/auth.guard';
import { DtoPipe } from '../common/dto.pipe';
import { schemaRef } from '../observability/openapi';
import { FleetService } from './fleet.service';

function workerIdParam(id: string): string {
  if (!WORKER_ID_PATTERN.test(id)) throw ApiError.validation([{ field: 'workerId', problems: ['workerId must be a registered worker id'] }]);
  return id;
}

/** Worker registry routes, on the exact paths GPU hosts already use. */
@ApiTags('internal: workers')
@ApiBearerAuth()
@UseGuards(InternalKeyGuard)
@Controller('internal/buffer/workers')
export class FleetController {
  constructor(private readonly fleet: FleetService) {}

  @Post('register')
  @HttpCode(200)
  @ApiOperation({ summary: 'Register (fixed id from BUFFER_WORKER_ID, or one is assigned)' })
  @ApiBody({ schema: schemaRef('RegisterWorkerRequest') })
  register(@Body(new DtoPipe(RegisterWorkerRequest)) body: RegisterWorkerRequest): Promise<RegisterWorkerResponse> {
    return this.fleet.register(body);
  }

  @Post(':id/heartbeat')
  @HttpCode(200)
  @ApiOperation({ summary: 'Heartbeat: renews the listed leases; answers lost and cancelled leases and commands' })
  @ApiBody({ schema: schemaRef('HeartbeatRequest') })
  heartbeat(@Param('id') id: string, @Body(new DtoPipe(HeartbeatRequest)) body: HeartbeatRequest): Promise<HeartbeatResponse> {
    return this.fleet.heartbeat(workerIdParam(id), body);
  }

  @Post(':id/deregister')
  @HttpCode(200)
  @ApiOperation({ summary: 'Graceful stop: the worker\'s held jobs are requeued at once' })
  @ApiBody({ schema: schemaRef('DeregisterRequest') })
  deregister(@Param('id') id: string, @Body(new DtoPipe(DeregisterRequest)) body: DeregisterRequest): Promise<DeregisterResponse> {
    return this.fleet.deregister(workerIdParam(id), body.reason);
  }
}
