/**
 * The resolution rate limit (anonymous per client IP, keyed per API key) as a callback onRequest
 * hook over the local-first store. @fastify/rate-limit's route hook is async and wraps every
 * store call in a promise: on an L1 hit that was about a tenth of the request (bench
 * resolve-l1-nolimit), for a count that needs no I/O. The answers are the plugin's: the same
 * client key (IPv6 by /64, through its normalizeIP), the same 429 body and headers.
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

/** The hook, or undefined when both budgets are off. */
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
    const { current, ttl } = store.count(isKeyed ? `key:${actor.keyId}` : clientKey(request.ip), windowMs);
    if (current <= max) {
      done();
      return;
    }
    done(rateLimited(reply, max, windowMs, ttl));
  };
}
