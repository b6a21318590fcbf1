/** buildApp(config, deps): the fastify application with every module's routes. Never listens. */
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { IncomingMessage } from 'node:http';
import type { IncomingMessage as RawRequest, ServerResponse } from 'node:http';
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance, type RawServerDefault } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type pg from 'pg';
import type { Config } from './config.js';
import { closeKeepAliveOnShutdown } from './infra/graceful-close.js';
import { benchRoutes } from './bench/routes.js';
import { healthRoutes } from './infra/health-routes.js';
import { registerErrorHandling } from './infra/http-errors.js';
import { validatorCompiler } from './infra/validation.js';
import type { Logger } from './infra/logger.js';
import { Federation } from './federation/index.js';
import type { ChangeSink } from './registry/change-sink.js';
import { registryRoutes } from './registry/routes.js';
import { batchRoutes } from './registry/batch-routes.js';
import { importRoutes } from './registry/import-routes.js';
import type { Importer } from './registry/importer.js';
import { buildWriters } from './registry/writers.js';
import type { ResolverCache } from './resolver/resolver-cache.js';
import { proxyRoutes } from './resolver/proxy-routes.js';
import { dashboardRoutes } from './stats/dashboard-routes.js';
import { ResolutionCounts } from './stats/resolution-counter.js';
import { statsRoutes } from './stats/routes.js';
import { StatsService } from './stats/service.js';
import { StatsWorker } from './stats/worker.js';
import { resolverRoutes } from './resolver/routes.js';
import { ResolverService } from './resolver/service.js';
import { registerAuthentication } from './tenancy/auth.js';
import { adminRoutes } from './tenancy/routes.js';
import { TenancyService } from './tenancy/service.js';

/** The application instance, typed with the TypeBox provider. */
export type App = FastifyInstance<RawServerDefault, RawRequest, ServerResponse, FastifyBaseLogger, TypeBoxTypeProvider>;

declare module 'fastify' {
  interface FastifyInstance {
    /** Folds and flushes statistics; tests call tick() instead of waiting for the timer. */
    statsWorker: StatsWorker;
    /** Streaming imports; the server resumes unfinished ones once it listens. */
    importer: Importer;
  }
}

export interface AppDeps {
  pool: pg.Pool;
  cache: ResolverCache;
  log: Logger;
  /** Server secret for API key hashes. */
  secret: Buffer;
  /** Change sinks run inside every identifier write's transaction. */
  sinks?: ChangeSink[];
}

const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

/** Honour a caller's X-Request-Id when it is sane, so one id follows a request across systems. */
function requestId(req: IncomingMessage): string {
  const given = req.headers['x-request-id'];
  return typeof given === 'string' && REQUEST_ID.test(given) ? given : randomUUID();
}

export async function buildApp(config: Config, deps: AppDeps): Promise<App> {
  // HTTPS when configured (federation links between nodes may need it without a TLS proxy).
  const https = config.TLS_CERT_FILE ? { https: { cert: readFileSync(config.TLS_CERT_FILE), key: readFileSync(config.TLS_KEY_FILE) } } : {};
  const app = Fastify({
    ...(https as object),
    loggerInstance: deps.log as FastifyBaseLogger,
    // Per-request lines go out at debug (onResponse below): INFO is kept for domain events.
    logController: new LogController({ disableRequestLogging: true, requestIdLogLabel: 'requestId' }),
    genReqId: requestId,
    bodyLimit: config.BODY_LIMIT_BYTES,
    // Handles are up to 255 bytes and may be percent-encoded three bytes per byte.
    routerOptions: { maxParamLength: 1024 },
  }).withTypeProvider<TypeBoxTypeProvider>();
  app.setValidatorCompiler(validatorCompiler());
  closeKeepAliveOnShutdown(app);

  const tenancy = new TenancyService(deps.pool, deps.secret, config.NODE_PREFIX);
  const stats = new StatsService(deps.pool, tenancy, config.STATS_TIME_ZONE);
  const federation = await Federation.create(config, { pool: deps.pool, log: deps.log, tenancy, stats });
  const { registry, batches, importer } = buildWriters(config, deps.pool, deps.cache, deps.log, [...(federation?.sinks ?? []), ...(deps.sinks ?? [])]);
  app.decorate('importer', importer);
  // Stops between chunks (the job resumes on the next start), before the pool closes.
  app.addHook('onClose', async () => importer.close());
  const resolutionCounts = config.STATS_COUNT_RESOLUTIONS ? new ResolutionCounts(config.STATS_TIME_ZONE) : undefined;
  const resolver = new ResolverService(registry, deps.cache, { maxTtlSeconds: config.CACHE_MAX_TTL, negativeTtlSeconds: config.NEGATIVE_CACHE_TTL }, resolutionCounts, federation?.source);
  const statsWorker = new StatsWorker(deps.pool, resolutionCounts, config.STATS_FLUSH_MS, deps.log);
  app.decorate('statsWorker', statsWorker);
  statsWorker.start();
  // Before the pool closes (the server closes the app first): the last counts go out.
  app.addHook('onClose', async () => statsWorker.stop());

  app.addHook('onRequest', async (request, reply) => {
    reply.header('x-request-id', request.id);
  });
  app.addHook('onResponse', async (request, reply) => {
    request.log.debug({ method: request.method, url: request.url, statusCode: reply.statusCode, ms: reply.elapsedTime }, 'request');
  });
  // JSON only: a text/plain body is refused with 415 rather than parsed as a string.
  app.removeContentTypeParser('text/plain');
  registerErrorHandling(app);
  registerAuthentication(app, tenancy);
  await federation?.register(app);

  await app.register(healthRoutes(deps.pool, deps.cache, config.NODE_ID));
  await app.register(adminRoutes(tenancy), { prefix: '/api/admin' });
  await app.register(statsRoutes(stats), { prefix: '/api/stats' });
  await app.register(dashboardRoutes());
  await app.register(registryRoutes(registry, config.MAX_VALUES_PER_RECORD));
  await app.register(batchRoutes(batches, config.MAX_VALUES_PER_RECORD, config.BATCH_BODY_LIMIT_BYTES));
  await app.register(importRoutes(importer, config.IMPORT_MAX_BYTES));
  await app.register(resolverRoutes(resolver, config.NODE_PREFIX));
  await app.register(proxyRoutes(resolver, config.NODE_PREFIX, config.NODE_ID));
  if (config.BENCH_ROUTES) await app.register(benchRoutes(deps.pool, config.NODE_PREFIX, config.STATS_TIME_ZONE));
  return app;
}
