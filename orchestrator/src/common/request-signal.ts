import type { FastifyReply } from 'fastify';

/** A signal that never aborts, for requests that answer at once. */
const NEVER = new AbortController().signal;

/**
 * Aborts when the client hangs up before the answer is sent (a long-poll whose caller went away).
 * Only requests that may wait need one: creating an AbortController per request is measurable on
 * the claim/complete hot path, so `waits` false returns a shared signal that never aborts.
 */
export function hangUpSignal(reply: FastifyReply, waits = true): AbortSignal {
  if (!waits) return NEVER;
  const controller = new AbortController();
  reply.raw.once('close', () => {
    if (!reply.raw.writableEnded) controller.abort();
  });
  return controller.signal;
}
