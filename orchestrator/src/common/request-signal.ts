import type { FastifyReply } from 'fastify';

/** Aborts when the client hangs up before the answer is sent (a long-poll whose caller went away). */
export function hangUpSignal(reply: FastifyReply): AbortSignal {
  const controller = new AbortController();
  reply.raw.once('close', () => {
    if (!reply.raw.writableEnded) controller.abort();
  });
  return controller.signal;
}
