/** config -> infrastructure -> app -> listen; and the graceful way back down. */
import type { Server } from 'node:http';
import v8 from 'node:v8';
import closeWithGrace from 'close-with-grace';
import type pg from 'pg';
import { buildApp, type App } from './app.js';
import type { ChangeSink } from './registry/change-sink.js';
import type { Config } from './config.js';
import { startEmbeddedPostgres, type EmbeddedPostgres } from './infra/embedded-postgres.js';
import { createLogger, type Logger } from './infra/logger.js';
import { runMigrations } from './infra/migrations.js';
import { createPool } from './infra/postgres.js';
import { connectRedis, createRedis } from './infra/redis.js';
import type { Redis } from 'ioredis';
import { loadServerSecret } from './infra/secrets.js';
import { RedisCache } from './resolver/redis-cache.js';
import { ResolverCache } from './resolver/resolver-cache.js';
import { AuditLog, NO_AUDIT } from './audit/service.js';
import { ensureFirstAdminKey } from './tenancy/bootstrap.js';
import { holdsApiKeys } from './tenancy/repository.js';
import { TenancyService } from './tenancy/service.js';

export interface Database {
  pool: pg.Pool;
  /** Migrations this start applied (file names). */
  applied: string[];
  embedded: EmbeddedPostgres | undefined;
  close(): Promise<void>;
}

/**
 * DATABASE_URL, or an embedded Postgres in DATA_DIR; migrated either way. `beforeMigrations` runs
 * the checks that must refuse a start before it changes the schema (the server secret's).
 */
export async function openDatabase(config: Config, log: Logger, onMigration?: (name: string) => void, beforeMigrations?: (pool: pg.Pool) => Promise<void>): Promise<Database> {
  let embedded: EmbeddedPostgres | undefined;
  let url = config.DATABASE_URL;
  if (!url) {
    embedded = await startEmbeddedPostgres(config.DATA_DIR, { port: config.EMBEDDED_PG_PORT, log });
    url = embedded.url;
    log.info({ mode: 'embedded', cluster: embedded.mode, port: embedded.port, dataDir: config.DATA_DIR }, 'postgres: embedded (no DATABASE_URL)');
  } else {
    log.info({ mode: 'external' }, 'postgres: DATABASE_URL');
  }
  const pool = createPool(url, config.PG_POOL_MAX, log);
  let applied: string[];
  try {
    await beforeMigrations?.(pool);
    const result = await runMigrations(pool, undefined, onMigration);
    applied = result.applied;
    if (applied.length > 0) log.info({ applied, schemaVersion: result.current }, 'migrations applied');
  } catch (err) {
    await pool.end().catch(() => undefined);
    await embedded?.stop();
    throw err;
  }
  return {
    pool,
    applied,
    embedded,
    close: async () => {
      await pool.end().catch((err: unknown) => log.warn({ err }, 'closing the postgres pool failed'));
      await embedded?.stop();
    },
  };
}

export interface Cache {
  cache: ResolverCache;
  /** The shared Redis client (rate limits, tenancy changes); undefined without REDIS_URL. */
  redis?: Redis;
  close(): Promise<void>;
}

/** L1 in the process always (unless sized 0); L2 and cross-process invalidation with REDIS_URL. */
export async function openCache(config: Config, log: Logger): Promise<Cache> {
  const l1 = { l1Bytes: config.CACHE_MEMORY_BYTES };
  if (!config.REDIS_URL) {
    log.info({ mode: 'in-process', ...l1 }, 'cache: in-process (no REDIS_URL)');
    const cache = new ResolverCache(config.CACHE_MEMORY_BYTES, undefined);
    return { cache, close: () => cache.close() };
  }
  const redis = createRedis(config.REDIS_URL, log);
  await connectRedis(redis, log);
  log.info({ mode: 'redis', keyPrefix: config.REDIS_KEY_PREFIX, ...l1 }, 'cache: in-process L1 and redis L2');
  const cache = new ResolverCache(config.CACHE_MEMORY_BYTES, new RedisCache(redis, config.REDIS_KEY_PREFIX, log));
  await cache.start();
  return {
    cache,
    redis,
    close: async () => {
      await cache.close();
      await redis.quit().catch(() => redis.disconnect());
    },
  };
}

export interface RunningNode {
  app: App;
  url: string;
  /** The METRICS_PORT listener's base URL, when there is one. */
  metricsUrl?: string;
  log: Logger;
  /** Stops accepting, finishes in-flight requests, closes pools, stops embedded Postgres. */
  close(): Promise<void>;
}

export interface StartOptions {
  log?: Logger;
  /** Extra change sinks (federation, audit and statistics plug in here). */
  sinks?: ChangeSink[];
}

export async function startNode(config: Config, options: StartOptions = {}): Promise<RunningNode> {
  const log = options.log ?? createLogger(config.LOG_LEVEL, { nodeId: config.NODE_ID });
  let secret: Buffer | undefined;
  const database = await openDatabase(config, log, undefined, async (pool) => {
    secret = await loadServerSecret(config, log, () => holdsApiKeys(pool));
  });
  let cache: Cache | undefined;
  let app: App | undefined;
  let metricsListener: Server | undefined;
  let metricsUrl: string | undefined;
  try {
    if (!secret) throw new Error('the server secret was not loaded');
    cache = await openCache(config, log);
    const audit = config.AUDIT_LOG ? new AuditLog(database.pool, log) : NO_AUDIT;
    await ensureFirstAdminKey(database.pool, new TenancyService(database.pool, secret, config.NODE_PREFIX, { audit }), config.DATA_DIR, log);
    app = await buildApp(config, { pool: database.pool, cache: cache.cache, log, secret, sinks: options.sinks ?? [], redis: cache.redis });
    const url = await app.listen({ host: config.HOST, port: config.PORT });
    if (app.metrics && config.METRICS_PORT !== '') {
      const metricsServer = await app.metrics.listen(config.METRICS_HOST, Number(config.METRICS_PORT));
      metricsUrl = metricsServer.url;
      metricsListener = metricsServer.server;
      log.info({ url: `${metricsServer.url}/metrics` }, 'metrics listening');
    }
    log.info({ url, nodePrefix: config.NODE_PREFIX }, 'snode listening');
    app.importer.resumeUnfinished();
    const opened = { app, cache, database, metricsListener };
    return {
      app,
      url,
      metricsUrl,
      log,
      close: async () => {
        await closeListener(opened.metricsListener);
        // In-flight requests get SHUTDOWN_TIMEOUT_MS. After that their connections are closed, so
        // that the rest still runs (the last statistics flush and audit seal, the pools, the
        // embedded Postgres) instead of the process being cut off with all of it undone.
        const cut = setTimeout(() => {
          log.warn({ afterMs: config.SHUTDOWN_TIMEOUT_MS }, 'shutdown: requests still running; closing their connections');
          opened.app.server.closeAllConnections();
        }, config.SHUTDOWN_TIMEOUT_MS);
        try {
          await opened.app.close();
        } finally {
          clearTimeout(cut);
        }
        await opened.cache.close();
        await opened.database.close();
      },
    };
  } catch (err) {
    await closeListener(metricsListener);
    await app?.close().catch(() => undefined);
    await cache?.close().catch(() => undefined);
    await database.close();
    throw err;
  }
}

async function closeListener(server: Server | undefined): Promise<void> {
  if (!server) return;
  const closed = new Promise<void>((resolve) => server.close(() => resolve()));
  server.closeAllConnections();
  await closed;
}

const SHUTDOWN_AFTER_REQUESTS_MS = 20_000;

/**
 * V8 sizes the heap for the machine, not for the node: with gigabytes free it lets the old
 * generation reach several times its live size between full collections, and a bulk load's
 * promoted garbage becomes resident memory. The growth factor is read at every full collection,
 * so setting it before the node allocates is enough. `serve` and `snode import` (the other bulk
 * load) both call it.
 */
export function tuneHeap(config: Config): void {
  if (config.GC_HEAP_GROWING_PERCENT > 0) v8.setFlagsFromString(`--heap-growing-percent=${config.GC_HEAP_GROWING_PERCENT}`);
}

/** `snode serve`: run until SIGTERM/SIGINT, then shut down gracefully. */
export async function serve(config: Config): Promise<void> {
  tuneHeap(config);
  const log = createLogger(config.LOG_LEVEL, { nodeId: config.NODE_ID });
  let starting: Promise<RunningNode> | undefined;
  // Installed before the node starts: a SIGTERM while the embedded Postgres starts or migrations
  // run waits for the start, then shuts down as usual (with no handler, node took the default and
  // died at once, leaving the embedded Postgres behind; as a container's PID 1 it ignored the
  // signal until docker's SIGKILL).
  // The hard deadline: requests get SHUTDOWN_TIMEOUT_MS (close() then cuts them off), and what
  // follows them (flushes, pools, the embedded Postgres) up to SHUTDOWN_AFTER_REQUESTS_MS more.
  const grace = closeWithGrace({ delay: config.SHUTDOWN_TIMEOUT_MS + SHUTDOWN_AFTER_REQUESTS_MS, logger: { error: (m: unknown) => log.error(m) } }, async ({ signal, err }) => {
    if (err) log.error({ err }, 'shutting down after an unexpected error');
    else log.info({ signal }, 'shutting down');
    const node = await starting?.catch(() => undefined);
    await node?.close();
    log.info('stopped');
  });
  starting = startNode(config, { log });
  try {
    await starting;
  } catch (err) {
    // Nothing runs (startNode closed what it had opened): the command line reports the error
    // with its exit code, which the handlers' "exit 0 when the loop ends" would replace.
    grace.uninstall();
    throw err;
  }
}
