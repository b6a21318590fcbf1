/** /healthz (the process answers) and /readyz (Postgres and Redis answer). */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import Type from 'typebox';
import type pg from 'pg';
import type { ResolverCache } from '../resolver/resolver-cache.js';

const CHECK_TIMEOUT_MS = 1000;

async function within<T>(promise: Promise<T>, fallback: T): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<T>((resolve) => {
    timer = setTimeout(() => resolve(fallback), CHECK_TIMEOUT_MS);
  });
  try {
    return await Promise.race([promise.catch(() => fallback), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

const Ready = Type.Object({
  status: Type.Union([Type.Literal('ready'), Type.Literal('not ready')]),
  nodeId: Type.String(),
  postgres: Type.Union([Type.Literal('up'), Type.Literal('down')]),
  cache: Type.Union([Type.Literal('up'), Type.Literal('down'), Type.Literal('in-process')]),
});

export function healthRoutes(pool: pg.Pool, cache: ResolverCache, nodeId: string): FastifyPluginAsyncTypebox {
  return async (app) => {
    app.get('/healthz', { schema: { response: { 200: Type.Object({ status: Type.Literal('ok'), nodeId: Type.String() }) } } },
      async () => ({ status: 'ok' as const, nodeId }));

    app.get('/readyz', { schema: { response: { 200: Ready, 503: Ready } } }, async (_request, reply) => {
      const [postgres, cacheUp] = await Promise.all([
        within(pool.query('SELECT 1').then(() => true), false),
        cache.kind === 'memory' ? Promise.resolve(true) : within(cache.ping(), false),
      ]);
      const cacheState = cache.kind === 'memory' ? ('in-process' as const) : cacheUp ? ('up' as const) : ('down' as const);
      const ready = postgres && cacheUp;
      return reply.code(ready ? 200 : 503).send({
        status: ready ? 'ready' : 'not ready',
        nodeId,
        postgres: postgres ? 'up' : 'down',
        cache: cacheState,
      });
    });
  };
}
