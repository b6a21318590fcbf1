/**
 * Per-request federation context: the hop count a resolution arrived with (X-Snode-Hops, so a
 * misconfigured home cannot make nodes ask each other forever) and whether the answer came from a
 * top-level escrow copy (X-Snode-Takeover names the node being stood in for).
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import type { FastifyInstance } from 'fastify';
import { AppError } from '../infra/errors.js';

export const HEADER_HOPS = 'x-snode-hops';
export const HEADER_TAKEOVER = 'x-snode-takeover';

interface Context {
  hops: number;
  takeover?: string;
}

const storage = new AsyncLocalStorage<Context>();

export function registerFederationContext(app: FastifyInstance): void {
  app.addHook('onRequest', (request, _reply, done) => {
    const given = request.headers[HEADER_HOPS];
    const hops = typeof given === 'string' && /^\d{1,3}$/.test(given) ? Number(given) : 0;
    storage.run({ hops }, done);
  });
  // A callback hook: an async one made every response a promise and sent it from a microtask.
  app.addHook('onSend', (_request, reply, payload, done) => {
    const takeover = storage.getStore()?.takeover;
    if (takeover) reply.header(HEADER_TAKEOVER, takeover);
    done(null, payload);
  });
}

/** The hop count to send on a request made while resolving for the current one; 508 past the limit. */
export function nextHops(maxHops: number): number {
  const next = (storage.getStore()?.hops ?? 0) + 1;
  if (next > maxHops) throw new AppError('LOOP_DETECTED', `resolution refused after ${maxHops} federation hops (${HEADER_HOPS}); the prefix's home is misconfigured`, 508);
  return next;
}

/** Marks the current answer as served from the escrow copy of `nodeId`. */
export function markTakeover(nodeId: string): void {
  const store = storage.getStore();
  if (store) store.takeover = nodeId;
}
