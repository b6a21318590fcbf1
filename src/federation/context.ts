/**
 * Per-request federation context: the hop count a resolution arrived with (X-Snode-Hops, so a
 * misconfigured home cannot make nodes ask each other forever) and whether the answer came from a
 * top-level escrow copy (X-Snode-Takeover names the node being stood in for). It rides on the
 * request (`request.resolutionContext`) and the resolver hands it to the upstream source: an
 * AsyncLocalStorage did the same implicitly, but its hooks cost every request about a
 * microsecond of node CPU (bench's ceiling route with and without UPSTREAM_URLS).
 */
import type { FastifyInstance } from 'fastify';
import { AppError } from '../infra/errors.js';
import type { ResolutionContext } from '../resolver/service.js';

export const HEADER_HOPS = 'x-snode-hops';
export const HEADER_TAKEOVER = 'x-snode-takeover';

export function registerFederationContext(app: FastifyInstance): void {
  app.decorateRequest('resolutionContext', null);
  app.addHook('onRequest', (request, _reply, done) => {
    const given = request.headers[HEADER_HOPS];
    request.resolutionContext = { hops: typeof given === 'string' && /^\d{1,3}$/.test(given) ? Number(given) : 0 };
    done();
  });
  app.addHook('onSend', (request, reply, payload, done) => {
    const takeover = request.resolutionContext?.takeover;
    if (takeover) reply.header(HEADER_TAKEOVER, takeover);
    done(null, payload);
  });
}

/** The hop count to send on a request made while resolving for `context`; 508 past the limit. */
export function nextHops(context: ResolutionContext | undefined, maxHops: number): number {
  const next = (context?.hops ?? 0) + 1;
  if (next > maxHops) throw new AppError('LOOP_DETECTED', `resolution refused after ${maxHops} federation hops (${HEADER_HOPS}); the prefix's home is misconfigured`, 508);
  return next;
}

/** Marks the answer for `context` as served from the escrow copy of `nodeId`. */
export function markTakeover(context: ResolutionContext | undefined, nodeId: string): void {
  if (context) context.takeover = nodeId;
}
