import { Body, Controller, Get, HttpCode, Param, Post, Query, Req, Res, UseGuards } from '@nestjs/common';
import { ApiBearerAuth, ApiBody, ApiOperation, ApiQuery, ApiTags } from '@nestjs/swagger';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { CreateJobRequest, GetJobQuery, ListJobsQuery, type JobView, type ListJobsResponse } from '@avatar-fleet/contracts';
import { ApiKeyGuard } from '../common/auth.guard';
import { DtoPipe, UuidPipe } from '../common/dto.pipe';
import { hangUpSignal } from '../common/request-signal';
import { schemaRef } from '../observability/openapi';
import { JobsService } from './jobs.service';

type OwnedRequest = FastifyRequest & { owner: string };

@ApiTags('jobs')
@ApiBearerAuth()
@UseGuards(ApiKeyGuard)
@Controller('v1/jobs')
export class JobsController {
  constructor(private readonly jobs: JobsService) {}

  @Post()
  @ApiOperation({ summary: 'Enqueue a job (201), or return the job an earlier request with the same idempotencyKey made (200)' })
  @ApiBody({ schema: schemaRef('CreateJobRequest') })
  async create(
    @Req() req: OwnedRequest,
    @Res({ passthrough: true }) reply: FastifyReply,
    @Body(new DtoPipe(CreateJobRequest)) body: CreateJobRequest,
  ): Promise<JobView> {
    const { job, created } = await this.jobs.create(req.owner, body);
    reply.status(created ? 201 : 200);
    return job;
  }

  @Get()
  @ApiOperation({ summary: 'List jobs, newest first, with filters and cursor pagination' })
  @ApiQuery({ name: 'state', required: false }) @ApiQuery({ name: 'kind', required: false })
  @ApiQuery({ name: 'limit', required: false }) @ApiQuery({ name: 'cursor', required: false })
  list(@Req() req: OwnedRequest, @Query(new DtoPipe(ListJobsQuery)) query: ListJobsQuery): Promise<ListJobsResponse> {
    return this.jobs.list(req.owner, query);
  }

  @Get(':id')
  @ApiOperation({ summary: 'Get a job; with waitMs (<= 60000) answer as soon as it is terminal ("run and wait")' })
  @ApiQuery({ name: 'waitMs', required: false })
  get(
    @Req() req: OwnedRequest,
    @Res({ passthrough: true }) reply: FastifyReply,
    @Param('id', new UuidPipe()) id: string,
    @Query(new DtoPipe(GetJobQuery)) query: GetJobQuery,
  ): Promise<JobView> {
    return this.jobs.get(req.owner, id, query.waitMs ?? 0, hangUpSignal(reply, (query.waitMs ?? 0) > 0));
  }

  @Post(':id/cancel')
  @HttpCode(200)
  @ApiOperation({ summary: 'Cancel: a queued job at once; a running one when its worker next hears from us' })
  cancel(@Req() req: OwnedRequest, @Param('id', new UuidPipe()) id: string): Promise<JobView> {
    return this.jobs.cancel(req.owner, id);
  }

  @Post(':id/retry')
  @HttpCode(200)
  @ApiOperation({ summary: 'Requeue a failed or cancelled job with a fresh budget of attempts' })
  retry(@Req() req: OwnedRequest, @Param('id', new UuidPipe()) id: string): Promise<JobView> {
    return this.jobs.retry(req.owner, id);
  }
}
