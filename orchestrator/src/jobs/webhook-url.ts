import net from 'node:net';
import { AddressRefusedError, type AddressPolicy } from '@avatar-fleet/contracts';

/**
 * Names that never leave the local network: `localhost` (RFC 6761), mDNS's `.local` (RFC 6762),
 * ICANN's private-use `.internal` (the clouds' metadata.google.internal), and the resolver
 * conventions `.localdomain` and `.home.arpa` (RFC 8375).
 */
const LOCAL_NAME = /(^|\.)(localhost|local|internal|localdomain|home\.arpa)$/;
/** A submit must not hang on a resolver; a local name that does not answer by then is refused. */
const LOOKUP_TIMEOUT_MS = 2000;

/**
 * Why a job's `webhookUrl` may not be accepted, as a field problem; undefined when it may. Only what
 * is certain at submit time is judged here:
 * - a literal address, in whatever spelling URL parsing turns into one (`0x7f000001`,
 *   `[::ffff:169.254.169.254]`, `127.1`), against the policy;
 * - an obviously local name: refused when the policy allows no private address, otherwise resolved
 *   through the policy, which accepts it only if every address it has is allowed.
 * Any other name is left alone: what it resolves to may change before delivery, so the webhook
 * sender connects through the policy's guarded agents, which check each answer at connect time.
 */
export async function webhookUrlProblem(url: string, policy: AddressPolicy): Promise<string | undefined> {
  let hostname: string;
  try {
    hostname = new URL(url).hostname;
  } catch {
    return 'webhookUrl must be an http(s) URL';
  }
  // `[::1]` keeps its brackets in a URL, and `localhost.` (fully qualified) its dot.
  const host = hostname.replace(/^\[(.*)\]$/, '$1').replace(/\.$/, '').toLowerCase();
  if (net.isIP(host)) {
    return policy.permits(host) ? undefined : `webhookUrl reaches ${host}, ${REFUSED} (allow it with WEBHOOK_ALLOW)`;
  }
  if (!LOCAL_NAME.test(host)) return undefined;
  if (policy.allow.length === 0) return `webhookUrl names ${host}, a local host name: ${REFUSED_NAME}`;
  const refused = await resolvesOutside(host, policy);
  return refused ? `webhookUrl names ${host}, a local host name ${refused}` : undefined;
}

const REFUSED = 'a private, loopback or link-local address that webhooks may not be sent to';
const REFUSED_NAME = 'webhooks may not be sent to the local network (WEBHOOK_ALLOW opens chosen addresses for local development)';

/** Why `host` may not be reached through the policy (an address it refuses, no answer), or undefined. */
function resolvesOutside(host: string, policy: AddressPolicy): Promise<string | undefined> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(`that did not resolve within ${LOOKUP_TIMEOUT_MS} ms`), LOOKUP_TIMEOUT_MS);
    policy.lookup(host, { all: true }, (error) => {
      clearTimeout(timer);
      if (!error) resolve(undefined);
      else if (error instanceof AddressRefusedError) resolve(`that resolves to ${error.address}, ${REFUSED} (allow it with WEBHOOK_ALLOW)`);
      else resolve(`that does not resolve here (${error.code ?? error.message})`);
    });
  });
}
