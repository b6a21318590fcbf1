/** buildApp(config, deps): the fastify application with every module's routes. Never listens. */
import { randomUUID } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { IncomingMessage as RawRequest, ServerResponse } from 'node:http';
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance, type RawServerDefault } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { readFile } from 'node:fs/promises';
import type { Redis } from 'ioredis';
import type pg from 'pg';
import { auditRoutes } from './audit/routes.js';
import { AuditLog, NO_AUDIT } from './audit/service.js';
import { auditSink } from './audit/sink.js';
import { trustProxy, type Config } from './config.js';
import { closeKeepAliveOnShutdown } from './infra/graceful-close.js';
import { benchRoutes } from './bench/routes.js';
import { healthRoutes } from './infra/health-routes.js';
import { Metrics } from './infra/metrics.js';
import { metricsRoutes } from './infra/metrics-routes.js';
import { registerOpenApi } from './infra/openapi.js';
import { publicBaseUrl } from './infra/public-url.js';
import { frameworkErrorHandler, registerErrorHandling } from './infra/http-errors.js';
import { validatorCompiler } from './infra/validation.js';
import type { Logger } from './infra/logger.js';
import { lazyRequestLogger } from './infra/request-logger.js';
import { Federation, recordSyncRole, SOFTWARE_VERSION } from './federation/index.js';
import type { ChangeSink } from './registry/change-sink.js';
import { registryRoutes } from './registry/routes.js';
import { batchRoutes } from './registry/batch-routes.js';
import { importRoutes } from './registry/import-routes.js';
import { TemplateService } from './registry/templates.js';
import type { TemplateStore } from './registry/templates-store.js';
import { templateRoutes } from './registry/templates-routes.js';
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
import { enforceAccess } from './tenancy/access.js';
import { PgTenancyChanges } from './tenancy/change-bus.js';
import { OnboardingService } from './tenancy/onboarding.js';
import { onboardingRoutes } from './tenancy/onboarding-routes.js';
import { registerRateLimits, type RateLimits } from './tenancy/rate-limits.js';
import { adminRoutes } from './tenancy/routes.js';
import { ownKeyRoutes } from './tenancy/key-routes.js';
import { TenancyService } from './tenancy/service.js';
import { RefusalLog } from './tenancy/refusals.js';

/** The application instance, typed with the TypeBox provider. */
export type App = FastifyInstance<RawServerDefault, RawRequest, ServerResponse, FastifyBaseLogger, TypeBoxTypeProvider>;

declare module 'fastify' {
  interface FastifyInstance {
    /** Folds and flushes statistics; tests call tick() instead of waiting for the timer. */
    statsWorker: StatsWorker;
    /** Streaming imports; the server resumes unfinished ones once it listens. */
    importer: Importer;
    /** The audit log (its sealer runs every AUDIT_SEAL_MS; tests call seal()). */
    auditLog: AuditLog;
    /** Refused requests tallied for the audit log (tests call flush() instead of waiting for the window). */
    refusals: RefusalLog;
    /** Rate limits (tests call sync() instead of waiting for RATE_LIMIT_SYNC_MS). */
    rateLimits: RateLimits;
    /** Prometheus metrics; undefined with METRICS=false. The server opens METRICS_PORT with it. */
    metrics: Metrics | undefined;
    /** The write path's template cache (tests watch it being invalidated across processes). */
    templates: TemplateStore;
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
  /** Shared Redis (rate limits, tenancy changes); undefined in single-process mode. */
  redis?: Redis;
}

const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

/** Honour a caller's X-Request-Id when it is sane, so one id follows a request across systems. */
function requestId(req: IncomingMessage): string {
  const given = req.headers['x-request-id'];
  return typeof given === 'string' && REQUEST_ID.test(given) ? given : randomUUID();
}

export async function buildApp(config: Config, deps: AppDeps): Promise<App> {
  const https = config.TLS_CERT ? { cert: await readFile(config.TLS_CERT), key: await readFile(config.TLS_KEY) } : undefined;
  const app = Fastify({
    ...(https ? { https } : {}),
    trustProxy: trustProxy(config.TRUST_PROXY) as never,
    loggerInstance: deps.log as FastifyBaseLogger,
    // Per-request lines go out at debug (onResponse below): INFO is kept for domain events.
    logController: new LogController({ disableRequestLogging: true, requestIdLogLabel: 'requestId' }),
    genReqId: requestId,
    childLoggerFactory: lazyRequestLogger,
    frameworkErrors: frameworkErrorHandler as never,
    bodyLimit: config.BODY_LIMIT_BYTES,
    // Handles are up to 255 bytes and may be percent-encoded three bytes per byte.
    routerOptions: { maxParamLength: 1024 },
  }).withTypeProvider<TypeBoxTypeProvider>() as unknown as App;
  app.setValidatorCompiler(validatorCompiler());
  closeKeepAliveOnShutdown(app);

  const auditLog = new AuditLog(deps.pool, deps.log);
  const audit = config.AUDIT_LOG ? auditLog : NO_AUDIT;
  const changes = new PgTenancyChanges(deps.pool, deps.log);
  await changes.start();
  const tenancy = new TenancyService(deps.pool, deps.secret, config.NODE_PREFIX, { audit, changes, keyCacheMs: config.KEY_CACHE_MS });
  await tenancy.loadDisabled();
  const onboarding = new OnboardingService(deps.pool, tenancy);
  const stats = new StatsService(deps.pool, tenancy, config.STATS_TIME_ZONE);
  const federation = await Federation.create(config, { pool: deps.pool, log: deps.log, tenancy, stats });
  await recordSyncRole(deps.pool, config, deps.log);
  const sinks = [...(config.AUDIT_LOG ? [auditSink(audit)] : []), ...(federation?.sinks ?? []), ...(deps.sinks ?? [])];
  const { registry, batches, importer, templates } = buildWriters(config, deps.pool, deps.cache, deps.log, sinks, (prefix) => tenancy.isDisabled(prefix), changes, (keyId) => tenancy.isKeyValid(keyId));
  app.decorate('importer', importer);
  app.decorate('templates', templates);
  // Stops between chunks (the job resumes on the next start), before the pool closes.
  app.addHook('onClose', async () => importer.close());
  const resolutionCounts = config.STATS_COUNT_RESOLUTIONS ? new ResolutionCounts(config.STATS_TIME_ZONE) : undefined;
  const resolver = new ResolverService(registry, deps.cache, { maxTtlSeconds: config.CACHE_MAX_TTL, negativeTtlSeconds: config.NEGATIVE_CACHE_TTL }, resolutionCounts, federation?.source);
  const statsWorker = new StatsWorker(deps.pool, resolutionCounts, config.STATS_FLUSH_MS, deps.log, async () => new Set((await tenancy.prefixDirectory()).map((d) => d.prefix)));
  app.decorate('statsWorker', statsWorker);
  statsWorker.start();
  // Before the pool closes (the server closes the app first): the last counts go out.
  app.addHook('onClose', async () => statsWorker.stop());
  app.decorate('auditLog', auditLog);
  if (config.AUDIT_LOG) auditLog.start(config.AUDIT_SEAL_MS);
  const refusals = new RefusalLog(deps.pool, audit, tenancy, { windowMs: config.AUDIT_REFUSED_WINDOW_MS, maxSources: config.AUDIT_REFUSED_MAX_SOURCES }, deps.log);
  app.decorate('refusals', refusals);
  if (config.AUDIT_LOG) refusals.start();
  app.addHook('onClose', async () => {
    await refusals.stop();
    await auditLog.stop();
    await changes.close();
  });

  // A callback hook: an async one cost every request a promise and a microtask.
  app.addHook('onRequest', (request, reply, done) => {
    reply.header('x-request-id', request.id);
    done();
  });
  // The code of a refusal, for the audit log's tally (onError runs only for errors: nothing on the hot path).
  const refusedCodes = new WeakMap<object, string>();
  app.addHook('onError', async (request, _reply, error) => {
    const status = (error as { statusCode?: number }).statusCode;
    if (status === 401 || status === 403) refusedCodes.set(request, (error as { code?: string }).code ?? `HTTP_${status}`);
  });
  // A callback hook that builds nothing unless debug is on or the answer is a refusal: an async
  // one cost every request a promise.
  const logRequests = deps.log.isLevelEnabled('debug');
  const tallyRefusals = config.AUDIT_LOG;
  app.addHook('onResponse', (request, reply, done) => {
    if (logRequests) request.log.debug({ method: request.method, url: request.url, statusCode: reply.statusCode, ms: reply.elapsedTime }, 'request');
    const status = reply.statusCode;
    if ((status === 401 || status === 403) && tallyRefusals) refusals.record(request, status, refusedCodes.get(request) ?? `HTTP_${status}`);
    done();
  });
  const metrics = config.METRICS
    ? new Metrics({
      nodeId: config.NODE_ID,
      role: config.ROLE,
      version: SOFTWARE_VERSION,
      pool: deps.pool,
      poolMax: config.PG_POOL_MAX,
      cache: deps.cache,
      redis: deps.redis,
      resolver,
      federation: federation && {
        status: () => federation.status(),
        ...(federation.topLevelService ? { nodeStates: () => federation.topLevelService!.nodes() } : {}),
      },
    })
    : undefined;
  app.decorate('metrics', metrics);
  // Before any route is registered: every route gets its timing hook, its place in the document.
  metrics?.instrument(app as unknown as FastifyInstance);
  await registerOpenApi(app as unknown as FastifyInstance, SOFTWARE_VERSION);
  // JSON only: a text/plain body is refused with 415 rather than parsed as a string.
  app.removeContentTypeParser('text/plain');
  registerErrorHandling(app);
  registerAuthentication(app, tenancy);
  enforceAccess(app as unknown as FastifyInstance);
  const rateLimits = await registerRateLimits(app as unknown as FastifyInstance, {
    windowMs: config.RATE_LIMIT_WINDOW_MS,
    resolveAnonymous: config.RATE_LIMIT_RESOLVE_ANONYMOUS,
    resolveKeyed: config.RATE_LIMIT_RESOLVE_KEYED,
    register: config.RATE_LIMIT_REGISTER,
    onboarding: config.RATE_LIMIT_ONBOARDING,
    admin: config.RATE_LIMIT_ADMIN,
    stats: config.RATE_LIMIT_STATS,
    audit: config.RATE_LIMIT_AUDIT,
    syncMs: config.RATE_LIMIT_SYNC_MS,
  }, deps.redis, config.REDIS_KEY_PREFIX, deps.log);
  app.decorate('rateLimits', rateLimits);
  app.addHook('onClose', async () => rateLimits.stop());

  await federation?.register(app);
  await app.register(healthRoutes(deps.pool, deps.cache, config.NODE_ID));
  if (metrics && config.METRICS_PORT === '') await app.register(metricsRoutes(metrics));
  await app.register(adminRoutes(tenancy, onboarding), { prefix: '/api/admin' });
  await app.register(onboardingRoutes(onboarding), { prefix: '/api/enterprises' });
  await app.register(ownKeyRoutes(tenancy), { prefix: '/api/keys' });
  await app.register(auditRoutes(auditLog), { prefix: '/api/audit' });
  await app.register(statsRoutes(stats), { prefix: '/api/stats' });
  await app.register(dashboardRoutes());
  await app.register(registryRoutes(registry, config.MAX_VALUES_PER_RECORD));
  await app.register(batchRoutes(batches, config.MAX_VALUES_PER_RECORD, config.BATCH_BODY_LIMIT_BYTES));
  await app.register(importRoutes(importer, config.IMPORT_MAX_BYTES));
  await app.register(templateRoutes(new TemplateService(deps.pool, registry, templates, audit)));
  await app.register(resolverRoutes(resolver, config.NODE_PREFIX));
  const baseUrl = () => publicBaseUrl(config, (app.server.address() as AddressInfo | null)?.port);
  await app.register(proxyRoutes(resolver, config.NODE_PREFIX, config.NODE_ID, baseUrl));
  if (config.BENCH_ROUTES) await app.register(benchRoutes(deps.pool, config.NODE_PREFIX, config.STATS_TIME_ZONE));
  return app;
}
