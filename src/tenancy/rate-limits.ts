/**
 * Rate limit policies (@fastify/rate-limit), and which routes each covers: this list is the one
 * place that says so. Every window is RATE_LIMIT_WINDOW_MS; a limit of 0 turns its policy off.
 *
 * | policy           | routes                                   | counted per          | store (with Redis)        | Redis unreachable       |
 * |------------------|------------------------------------------|----------------------|---------------------------|-------------------------|
 * | resolve-anonymous| GET /api/handles/*, POST /api/resolve, GET /{handle}, no key | client IP (IPv6 /64) | local-first, synced | open: per-process budget |
 * | resolve-keyed    | the same routes, with a key              | API key              | local-first, synced       | open: per-process budget |
 * | register         | PUT, DELETE /api/handles/*, POST /api/handles/batch, POST /api/imports, PUT /api/templates/* | API key | local-first, synced | open: per-process budget |
 * | onboarding       | POST /api/enterprises/apply              | client IP (IPv6 /64) | Redis (exact)             | closed: 503             |
 * | admin            | /api/admin/*, /api/keys                  | API key              | Redis (exact)             | open: not limited       |
 * | stats            | /api/stats/*                             | API key              | Redis (exact)             | open: not limited       |
 * | audit            | /api/audit, /api/audit/*                 | API key              | Redis (exact)             | open: not limited       |
 */
import fastifyRateLimit, { type RateLimitOptions } from '@fastify/rate-limit';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Redis } from 'ioredis';
import type { Logger } from '../infra/logger.js';
import { ACCESS_MATRIX } from './access.js';
import { rateLimitError } from './rate-limit-error.js';
import { perKeyLimitHook, resolutionLimitHook, type CallbackHook } from './local-limits.js';
import { DispatchingStore, failClosed, LocalFirstStore, pluginLocalStore, pluginRedisStore, type RateLimitStore } from './rate-limit-stores.js';

export interface RateLimitSettings {
  windowMs: number;
  resolveAnonymous: number;
  resolveKeyed: number;
  register: number;
  onboarding: number;
  admin: number;
  stats: number;
  audit: number;
  syncMs: number;
}

type Hook = (request: FastifyRequest, reply: FastifyReply) => Promise<void>;

/** The matrix's routes whose path passes `test` (a GET also as HEAD). */
const routesOf = (test: (path: string) => boolean): string[] =>
  Object.keys(ACCESS_MATRIX)
    .filter((route) => test(route.slice(route.indexOf(' ') + 1)))
    .flatMap((route) => (route.startsWith('GET ') ? [route, `HEAD ${route.slice(4)}`] : [route]));

export const POLICY_ROUTES: Record<'resolution' | 'register' | 'onboarding' | 'admin' | 'stats' | 'audit', readonly string[]> = {
  // Template reads are public and, like resolution, counted per client IP or key.
  resolution: ['GET /api/handles/*', 'HEAD /api/handles/*', 'POST /api/resolve', 'GET /*', 'HEAD /*', 'GET /api/templates/:prefix', 'GET /api/templates/:prefix/:version'],
  register: ['PUT /api/handles/*', 'DELETE /api/handles/*', 'POST /api/handles/batch', 'POST /api/imports', 'PUT /api/templates/:prefix/:version'],
  onboarding: ['POST /api/enterprises/apply'],
  admin: routesOf((path) => path.startsWith('/api/admin/') || path === '/api/keys' || path.startsWith('/api/keys/')),
  stats: routesOf((path) => path.startsWith('/api/stats/')),
  audit: routesOf((path) => path === '/api/audit' || path.startsWith('/api/audit/')),
};

/** Registers the plugin and attaches each policy to its routes; call before any route is added. */
export interface RateLimits {
  /** Adds resolution and registration counts to the shared budgets now (the timer does it every RATE_LIMIT_SYNC_MS). */
  sync(): Promise<void>;
  stop(): void;
}

export async function registerRateLimits(app: FastifyInstance, settings: RateLimitSettings, redis: Redis | undefined, keyPrefix: string, log: Logger): Promise<RateLimits> {
  await app.register(fastifyRateLimit, {
    global: false,
    store: DispatchingStore as never,
    errorResponseBuilder: (_request, context) => rateLimitError(context.max, settings.windowMs, context.ttl),
  });
  const ns = `${keyPrefix}rl:`;
  const resolveStore = new LocalFirstStore(redis, `${ns}resolve:`, settings.syncMs, log);
  const registerStore = new LocalFirstStore(redis, `${ns}register:`, settings.syncMs, log);
  const exact = (name: string): RateLimitStore => (redis ? pluginRedisStore(redis, `${ns}${name}:`) : pluginLocalStore());
  const byKey = (request: FastifyRequest) => (request.actor.kind === 'key' ? request.actor.keyId : `ip:${request.ip}`);
  const policy = (max: number, options: RateLimitOptions & { backend: RateLimitStore }): Hook | undefined =>
    max > 0 ? (app.rateLimit({ hook: 'onRequest', max, timeWindow: settings.windowMs, ...options } as RateLimitOptions) as unknown as Hook) : undefined;

  // Resolution and registration: callback hooks counting in the process (local-limits.ts). Their
  // answers carry the x-ratelimit-* headers only with a 429, unlike the plugin's policies: three
  // more headers on every cached answer cost the line-rate path measurably.
  const resolution = resolutionLimitHook(resolveStore, { windowMs: settings.windowMs, anonymous: settings.resolveAnonymous, keyed: settings.resolveKeyed });
  const hooks: Record<keyof typeof POLICY_ROUTES, Hook | CallbackHook | undefined> = {
    resolution,
    // Registration counts in the process too (its own store), shared through Redis every
    // RATE_LIMIT_SYNC_MS: an exact count cost every PUT a Redis round trip (bench register-single).
    register: perKeyLimitHook(registerStore, settings.windowMs, settings.register),
    onboarding: policy(settings.onboarding, { backend: redis ? failClosed(exact('onboarding')) : exact('onboarding') }),
    // Keyed callers only (the role check runs first): a request each, per key, failing open like writes.
    admin: policy(settings.admin, { backend: exact('admin'), keyGenerator: byKey, skipOnError: true }),
    stats: policy(settings.stats, { backend: exact('stats'), keyGenerator: byKey, skipOnError: true }),
    audit: policy(settings.audit, { backend: exact('audit'), keyGenerator: byKey, skipOnError: true }),
  };

  const routes = new Map<string, Hook | CallbackHook>();
  for (const [name, list] of Object.entries(POLICY_ROUTES) as Array<[keyof typeof POLICY_ROUTES, readonly string[]]>) {
    const hook = hooks[name];
    if (hook) for (const route of list) routes.set(route, hook);
  }
  app.addHook('onRoute', (route) => {
    for (const method of Array.isArray(route.method) ? route.method : [route.method]) {
      const hook = routes.get(`${method} ${route.url}`);
      if (!hook) continue;
      const existing = route.onRequest;
      route.onRequest = existing === undefined ? [hook] : [...(Array.isArray(existing) ? existing : [existing]), hook] as never;
    }
  });
  return {
    sync: async () => {
      await Promise.all([resolveStore.sync(), registerStore.sync()]);
    },
    stop: () => {
      resolveStore.stop();
      registerStore.stop();
    },
  };
}
