import { Body, Controller, HttpCode, Param, Post, Res, UseGuards } from '@nestjs/common';
import { ApiBearerAuth, ApiBody, ApiOperation, ApiTags } from '@nestjs/swagger';
import type { FastifyReply } from 'fastify';
import {
  ClaimRequest, ProgressRequest, StatusRequest, type ClaimResponse, type ProgressResponse, type StatusResponse,
} from '@avatar-fleet/contracts';
import { InternalKeyGuard } from '../common/auth.guard';
import { DtoPipe, UuidPipe } from '../common/dto.pipe';
import { hangUpSignal } from '../common/request-signal';
import { schemaRef } from '../observability/openapi';
import { LeasesService } from './leases.service';

/** Claim, status and progress, on the exact paths GPU hosts already use. */
@ApiTags('internal: jobs')
@ApiBearerAuth()
@UseGuards(InternalKeyGuard)
@Controller('internal')
export class LeasesController {
  constructor(private readonly leases: LeasesService) {}

  @Post('buffer/jobs/claim')
  @ApiOperation({ summary: 'Long-poll claim (<= 25 s): 200 with a leased job, or 204' })
  @ApiBody({ schema: schemaRef('ClaimRequest') })
  async claim(
    @Res({ passthrough: true }) reply: FastifyReply,
    @Body(new DtoPipe(ClaimRequest)) body: ClaimRequest,
  ): Promise<ClaimResponse | undefined> {
    const waitMs = body.waitMs ?? 20_000;
    const job = await this.leases.claim(body.workerId, waitMs, hangUpSignal(reply, waitMs > 0));
    if (!job) {
      reply.status(204);
      return undefined;
    }
    reply.status(200);
    return { job };
  }

  @Post('buffer/jobs/:id/status')
  @HttpCode(200)
  @ApiOperation({ summary: 'running / completed (result) / failed (error); 409 when the attempt is stale. claimNext claims the next job in the same call' })
  @ApiBody({ schema: schemaRef('StatusRequest') })
  status(
    @Res({ passthrough: true }) reply: FastifyReply,
    @Param('id', new UuidPipe()) id: string,
    @Body(new DtoPipe(StatusRequest)) body: StatusRequest,
  ): Promise<StatusResponse> {
    return this.leases.status(id, body, hangUpSignal(reply, (body.claimNext?.waitMs ?? 0) > 0));
  }

  @Post('jobs/:id/progress')
  @HttpCode(200)
  @ApiOperation({ summary: 'Progress (stage, fraction, monotonic sequence); the reply says whether cancel was requested' })
  @ApiBody({ schema: schemaRef('ProgressRequest') })
  progress(@Param('id', new UuidPipe()) id: string, @Body(new DtoPipe(ProgressRequest)) body: ProgressRequest): Promise<ProgressResponse> {
    return this.leases.progress(id, body);
  }
}
