import { Body, Controller, HttpCode, Param, Post, UseGuards } from '@nestjs/common';
import { ApiBearerAuth, ApiBody, ApiOperation, ApiTags } from '@nestjs/swagger';
import {
  DeregisterRequest, HeartbeatRequest, RegisterWorkerRequest, WORKER_ID_PATTERN,
  type DeregisterResponse, type HeartbeatResponse, type RegisterWorkerResponse,
} from '@avatar-fleet/contracts';
import { Allow, AuthGuard, Caller } from '../auth/auth.guard';
import type { Principal } from '../auth/principal';
import { ApiError } from '../common/api-error';
import { DtoPipe } from '../common/dto.pipe';
import { schemaRef } from '../observability/openapi';
import { FleetService } from './fleet.service';
import { WorkerAccess } from './worker-access';

function workerIdParam(id: string): string {
  if (!WORKER_ID_PATTERN.test(id)) throw ApiError.validation([{ field: 'workerId', problems: ['workerId must be 1-128 characters of letters, digits, . _ : -'] }]);
  return id;
}

/**
 * Worker registry routes, on the exact paths GPU hosts already use. Register takes the enrolment
 * key; the rest take the worker's own token, or the enrolment key for a legacy host (WorkerAccess).
 */
@ApiTags('internal: workers')
@ApiBearerAuth()
@UseGuards(AuthGuard)
@Allow('worker', 'enrolment')
@Controller('internal/buffer/workers')
export class FleetController {
  constructor(
    private readonly fleet: FleetService,
    private readonly access: WorkerAccess,
  ) {}

  @Post('register')
  @Allow('enrolment')
  @HttpCode(200)
  @ApiOperation({ summary: 'Register with the enrolment key (fixed id from BUFFER_WORKER_ID, or one is assigned); returns the worker\'s own token and epoch' })
  @ApiBody({ schema: schemaRef('RegisterWorkerRequest') })
  register(@Body(new DtoPipe(RegisterWorkerRequest, { snakeCase: true })) body: RegisterWorkerRequest): Promise<RegisterWorkerResponse> {
    return this.fleet.register(body);
  }

  @Post(':id/heartbeat')
  @HttpCode(200)
  @ApiOperation({ summary: 'Heartbeat: renews the listed leases (all held ones when `leases` is absent); answers lost and cancelled leases and commands' })
  @ApiBody({ schema: schemaRef('HeartbeatRequest') })
  async heartbeat(
    @Caller() caller: Principal,
    @Param('id') id: string,
    @Body(new DtoPipe(HeartbeatRequest, { snakeCase: true })) body: HeartbeatRequest,
  ): Promise<HeartbeatResponse> {
    await this.access.actFor(caller, workerIdParam(id), body);
    return this.fleet.heartbeat(id, body);
  }

  @Post(':id/deregister')
  @HttpCode(200)
  @ApiOperation({ summary: 'Graceful stop: the worker\'s held jobs are requeued at once; fenced by the registration epoch' })
  @ApiBody({ schema: schemaRef('DeregisterRequest') })
  async deregister(
    @Caller() caller: Principal,
    @Param('id') id: string,
    @Body(new DtoPipe(DeregisterRequest, { snakeCase: true })) body: DeregisterRequest,
  ): Promise<DeregisterResponse> {
    await this.access.actFor(caller, workerIdParam(id));
    const epoch = caller.role === 'worker' ? caller.epoch : (body.epoch ?? null);
    return this.fleet.deregister(id, epoch, body.reason);
  }
}
