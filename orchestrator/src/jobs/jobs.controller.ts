import { Body, Controller, Get, HttpCode, Param, Post, Query, Res, UseGuards } from '@nestjs/common';
import { ApiBearerAuth, ApiBody, ApiOperation, ApiQuery, ApiTags } from '@nestjs/swagger';
import type { FastifyReply } from 'fastify';
import { CreateJobRequest, GetJobQuery, ListJobsQuery, type JobView, type ListJobsResponse } from '@avatar-fleet/contracts';
import { Allow, AuthGuard, Caller } from '../auth/auth.guard';
import type { Principal } from '../auth/principal';
import { DtoPipe, UuidPipe } from '../common/dto.pipe';
import { hangUpSignal } from '../common/request-signal';
import { schemaRef } from '../observability/openapi';
import { JobsService } from './jobs.service';

/** A product key acts on its owner's jobs; an operator key on every job (null: no owner filter). */
function ownerScope(caller: Principal): string | null {
  return caller.role === 'product' ? caller.owner : null;
}

/** Product keys create jobs and act on their own; operator keys act on every job but create none (a job belongs to a product owner). */
@ApiTags('jobs')
@ApiBearerAuth()
@UseGuards(AuthGuard)
@Allow('product', 'operator')
@Controller('v1/jobs')
export class JobsController {
  constructor(private readonly jobs: JobsService) {}

  @Post()
  @Allow('product')
  @ApiOperation({ summary: 'Enqueue a job (201), or return the job an earlier request with the same idempotencyKey made (200)' })
  @ApiBody({ schema: schemaRef('CreateJobRequest') })
  async create(
    @Caller() caller: Principal,
    @Res({ passthrough: true }) reply: FastifyReply,
    @Body(new DtoPipe(CreateJobRequest)) body: CreateJobRequest,
  ): Promise<JobView> {
    // @Allow('product'): the caller has an owner.
    const { job, created } = await this.jobs.create(ownerScope(caller)!, body);
    reply.status(created ? 201 : 200);
    return job;
  }

  @Get()
  @ApiOperation({ summary: 'List jobs, newest first, with filters and cursor pagination' })
  @ApiQuery({ name: 'state', required: false }) @ApiQuery({ name: 'kind', required: false })
  @ApiQuery({ name: 'limit', required: false }) @ApiQuery({ name: 'cursor', required: false })
  list(@Caller() caller: Principal, @Query(new DtoPipe(ListJobsQuery)) query: ListJobsQuery): Promise<ListJobsResponse> {
    return this.jobs.list(ownerScope(caller), query);
  }

  @Get(':id')
  @ApiOperation({ summary: 'Get a job; with waitMs (<= 60000) answer as soon as it is terminal ("run and wait")' })
  @ApiQuery({ name: 'waitMs', required: false })
  get(
    @Caller() caller: Principal,
    @Res({ passthrough: true }) reply: FastifyReply,
    @Param('id', new UuidPipe()) id: string,
    @Query(new DtoPipe(GetJobQuery)) query: GetJobQuery,
  ): Promise<JobView> {
    return this.jobs.get(ownerScope(caller), id, query.waitMs ?? 0, hangUpSignal(reply, (query.waitMs ?? 0) > 0));
  }

  @Post(':id/cancel')
  @HttpCode(200)
  @ApiOperation({ summary: 'Cancel: a queued job at once; a running one when its worker next hears from us' })
  cancel(@Caller() caller: Principal, @Param('id', new UuidPipe()) id: string): Promise<JobView> {
    return this.jobs.cancel(ownerScope(caller), id);
  }

  @Post(':id/retry')
  @HttpCode(200)
  @ApiOperation({ summary: 'Requeue a failed or cancelled job with a fresh budget of attempts' })
  retry(@Caller() caller: Principal, @Param('id', new UuidPipe()) id: string): Promise<JobView> {
    return this.jobs.retry(ownerScope(caller), id);
  }
}
