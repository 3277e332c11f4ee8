import { Body, Controller, HttpCode, Param, Post, Res, UseGuards } from '@nestjs/common';
import { ApiBearerAuth, ApiBody, ApiOperation, ApiTags } from '@nestjs/swagger';
import type { FastifyReply } from 'fastify';
import {
  ClaimRequest, ProgressRequest, StatusRequest, type ClaimResponse, type ProgressResponse, type StatusResponse,
} from '@avatar-fleet/contracts';
import { Allow, AuthGuard, Caller } from '../auth/auth.guard';
import type { Principal } from '../auth/principal';
import { DtoPipe, UuidPipe } from '../common/dto.pipe';
import { hangUpSignal } from '../common/request-signal';
import { WorkerAccess } from '../fleet/worker-access';
import { schemaRef } from '../observability/openapi';
import { forLegacyHost } from './legacy-job';
import { LeasesService } from './leases.service';

/** Why a claim answered 204: a 204 has no body, so the reason travels in this header. */
export const NO_JOB_HEADER = 'x-no-job-reason';

/**
 * Claim, status and progress, on the exact paths GPU hosts already use. Status and progress need
 * the lease (its token is a secret that only the claim answer carried) and the credential of the
 * worker holding it: its own token, or the shared key for a legacy host (WorkerAccess).
 */
@ApiTags('internal: jobs')
@ApiBearerAuth()
@UseGuards(AuthGuard)
@Allow('worker', 'enrolment')
@Controller('internal')
export class LeasesController {
  constructor(
    private readonly leases: LeasesService,
    private readonly access: WorkerAccess,
  ) {}

  @Post('buffer/jobs/claim')
  @ApiOperation({ summary: `Long-poll claim (<= 25 s): 200 with a leased job, or 204 with the reason in ${NO_JOB_HEADER}` })
  @ApiBody({ schema: schemaRef('ClaimRequest') })
  async claim(
    @Caller() caller: Principal,
    @Res({ passthrough: true }) reply: FastifyReply,
    @Body(new DtoPipe(ClaimRequest, { snakeCase: true })) body: ClaimRequest,
  ): Promise<ClaimResponse | undefined> {
    await this.access.actFor(caller, body.workerId, body);
    const waitMs = body.waitMs ?? 20_000;
    const signal = hangUpSignal(reply, waitMs > 0);
    const job = await this.leases.claim(body.workerId, waitMs, signal);
    if (!job) {
      if (!signal.aborted) reply.header(NO_JOB_HEADER, await this.leases.whyNoJob(body.workerId));
      reply.status(204);
      return undefined;
    }
    reply.status(200);
    return { job: caller.role === 'enrolment' ? forLegacyHost(job) : job };
  }

  @Post('buffer/jobs/:id/status')
  @HttpCode(200)
  @ApiOperation({ summary: 'running / completed (result) / failed (error); 409 when the attempt is stale. claimNext claims the next job in the same call' })
  @ApiBody({ schema: schemaRef('StatusRequest') })
  async status(
    @Caller() caller: Principal,
    @Res({ passthrough: true }) reply: FastifyReply,
    @Param('id', new UuidPipe()) id: string,
    @Body(new DtoPipe(StatusRequest, { snakeCase: true })) body: StatusRequest,
  ): Promise<StatusResponse> {
    await this.access.reportFor(caller, id);
    const actor = caller.role === 'worker' ? caller.workerId : null;
    // The status stands on its own: a claimNext for a worker this caller may not claim for gets no next job, as any worker that cannot claim.
    if (body.claimNext && !(await this.access.mayActFor(caller, body.claimNext.workerId))) {
      const alone = await this.access.asHolder(caller, id, body, () => this.leases.status(id, { ...body, claimNext: undefined }, hangUpSignal(reply, false), actor));
      return { ...alone, next: null };
    }
    const answer = await this.access.asHolder(caller, id, body, () =>
      this.leases.status(id, body, hangUpSignal(reply, (body.claimNext?.waitMs ?? 0) > 0), actor));
    return answer.next && caller.role === 'enrolment' ? { ...answer, next: forLegacyHost(answer.next) } : answer;
  }

  @Post('jobs/:id/progress')
  @HttpCode(200)
  @ApiOperation({ summary: 'Progress (stage, fraction, monotonic sequence); the reply says whether cancel was requested' })
  @ApiBody({ schema: schemaRef('ProgressRequest') })
  async progress(
    @Caller() caller: Principal,
    @Param('id', new UuidPipe()) id: string,
    @Body(new DtoPipe(ProgressRequest, { snakeCase: true })) body: ProgressRequest,
  ): Promise<ProgressResponse> {
    await this.access.reportFor(caller, id);
    return this.access.asHolder(caller, id, body, () => this.leases.progress(id, body, caller.role === 'worker' ? caller.workerId : null));
  }
}
