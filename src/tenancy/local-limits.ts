/**
 * Rate limits counted in the process (resolution per client IP or API key, registration per API
 * key) as callback onRequest hooks over the local-first store: no I/O and no promise on the
 * request path. @fastify/rate-limit's route hook is async and, for an exact policy, makes a Redis
 * round trip per request: on an L1 hit that was about a tenth of the request (bench
 * resolve-l1-nolimit), on a single PUT a Redis command and socket write of its own. The answers
 * are the plugin's: the same client key (IPv6 by /64, through its normalizeIP), the same 429 body
 * and headers.
 */
import { normalizeIP } from '@fastify/rate-limit';
import type { FastifyReply, FastifyRequest, HookHandlerDoneFunction } from 'fastify';
import type { LocalFirstStore } from './rate-limit-stores.js';
import { rateLimited } from './rate-limit-error.js';

export type CallbackHook = (request: FastifyRequest, reply: FastifyReply, done: HookHandlerDoneFunction) => void;

export interface ResolutionBudgets {
  windowMs: number;
  /** Per client IP; 0: unlimited. */
  anonymous: number;
  /** Per API key; 0: unlimited. */
  keyed: number;
}

/** The client a budget belongs to: IPv4 as it is, IPv6 by its /64 (IPv4-mapped as IPv4). */
export function clientKey(ip: string): string {
  return ip.includes(':') ? normalizeIP(ip) : ip;
}

/** Resolution: anonymous callers per client IP, keyed ones per key. Undefined when both budgets are off. */
export function resolutionLimitHook(store: LocalFirstStore, budgets: ResolutionBudgets): CallbackHook | undefined {
  const { windowMs, anonymous, keyed } = budgets;
  if (anonymous <= 0 && keyed <= 0) return undefined;
  return (request, reply, done) => {
    const actor = request.actor;
    const isKeyed = actor.kind === 'key';
    const max = isKeyed ? keyed : anonymous;
    if (max <= 0) {
      done();
      return;
    }
    admit(store, isKeyed ? `key:${actor.keyId}` : clientKey(request.ip), max, windowMs, reply, done);
  };
}

/** Writes: per API key (the routes need one; a keyless request is refused before, or counted by IP). Undefined when off. */
export function perKeyLimitHook(store: LocalFirstStore, windowMs: number, max: number): CallbackHook | undefined {
  if (max <= 0) return undefined;
  return (request, reply, done) => {
    const actor = request.actor;
    admit(store, actor.kind === 'key' ? actor.keyId : `ip:${clientKey(request.ip)}`, max, windowMs, reply, done);
  };
}

/** Counts the request against `key`'s budget: on with the request, or the 429. */
function admit(store: LocalFirstStore, key: string, max: number, windowMs: number, reply: FastifyReply, done: HookHandlerDoneFunction): void {
  const { current, ttl } = store.count(key, windowMs);
  if (current <= max) done();
  else done(rateLimited(reply, max, windowMs, ttl));
}
