/**
 * Prometheus metrics (prom-client). prom-client gives the registry, the text format and the
 * process metrics (event-loop delay, CPU, memory, GC); the node's own figures are plain numbers
 * kept where they happen and read only when Prometheus scrapes (`get()` below), because a
 * prom-client child's observe() costs about a microsecond (it hashes its labels on every call),
 * more than an L1 resolution's whole budget allows. Per request: one Map lookup by status, a
 * bucket search over 14 bounds and three additions, in an onResponse hook made once per route.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { FastifyInstance, FastifyReply, FastifyRequest, HookHandlerDoneFunction, RouteOptions } from 'fastify';
import type { Redis } from 'ioredis';
import type pg from 'pg';
import { collectDefaultMetrics, Registry, type Metric } from 'prom-client';
import type { ResolverCache } from '../resolver/resolver-cache.js';
import { readRedisFigures } from './redis-figures.js';
import { TIERS, type ResolverService } from '../resolver/service.js';

/** Request duration buckets, seconds: an L1 hit is well under a millisecond, a batch import a few seconds. */
export const DURATION_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

type Labels = Record<string, string | number>;
interface Sample {
  value: number;
  labels: Labels;
  metricName?: string;
}
interface Collected {
  name: string;
  help: string;
  type: 'counter' | 'gauge' | 'histogram';
  values: Sample[];
  aggregator: 'sum';
}

/**
 * A metric prom-client's registry prints: it only calls get() (the same shape its own metrics
 * return). Ours compute their samples at scrape time from numbers the code keeps anyway.
 */
class ScrapedMetric {
  readonly aggregator = 'sum' as const;
  constructor(
    readonly name: string,
    readonly help: string,
    readonly type: Collected['type'],
    private readonly samples: () => Sample[] | Promise<Sample[]>,
  ) {}

  async get(): Promise<Collected> {
    return { name: this.name, help: this.help, type: this.type, values: await this.samples(), aggregator: 'sum' };
  }
}

/**
 * One read shared by the metrics of a scrape: prom-client calls every metric's get() in the same
 * tick, so they all join the read in flight, and the next scrape starts a new one.
 */
function perScrape<T>(read: () => Promise<T>): () => Promise<T> {
  let inflight: Promise<T> | undefined;
  return () =>
    (inflight ??= read().finally(() => {
      inflight = undefined;
    }));
}

/** One histogram series: cumulative bucket counts are made at scrape time. */
class Series {
  readonly counts = new Float64Array(DURATION_BUCKETS.length + 1);
  sum = 0;
  count = 0;
  constructor(readonly labels: Labels) {}

  observe(seconds: number): void {
    let i = 0;
    while (i < DURATION_BUCKETS.length && seconds > DURATION_BUCKETS[i]!) i += 1;
    this.counts[i]! += 1;
    this.sum += seconds;
    this.count += 1;
  }
}

/** Request durations by method, route (as registered) and status. */
class RequestHistogram {
  private readonly series: Series[] = [];

  /** The recorder of one route: a Map by status code, filled as statuses occur. */
  recorder(method: string, route: string): (status: number, seconds: number) => void {
    const byStatus = new Map<number, Series>();
    return (status, seconds) => {
      let series = byStatus.get(status);
      if (series === undefined) {
        series = new Series({ method, route, status: String(status) });
        byStatus.set(status, series);
        this.series.push(series);
      }
      series.observe(seconds);
    };
  }

  samples(): Sample[] {
    const out: Sample[] = [];
    const name = 'snode_http_request_duration_seconds';
    for (const s of this.series) {
      let cumulative = 0;
      for (let i = 0; i < DURATION_BUCKETS.length; i += 1) {
        cumulative += s.counts[i]!;
        out.push({ metricName: `${name}_bucket`, labels: { ...s.labels, le: DURATION_BUCKETS[i]! }, value: cumulative });
      }
      out.push({ metricName: `${name}_bucket`, labels: { ...s.labels, le: '+Inf' }, value: s.count });
      out.push({ metricName: `${name}_sum`, labels: s.labels, value: s.sum });
      out.push({ metricName: `${name}_count`, labels: s.labels, value: s.count });
    }
    return out;
  }
}

/** What the federation module reports (its status route's answer). */
export interface FederationFigures {
  status(): Promise<{
    upstream: { currentIndex: number; consecutiveFailures: number; failovers: number; lastSuccessAt: string | null } | null;
    outbox: { backlog: number; oldestUnsentAgeS: number; ackedSeq: number } | null;
    sender: { leader: boolean; sentBatches: number; sentEvents: number } | null;
  }>;
  /** Top-level role: the registered nodes' states. */
  nodeStates?(): Promise<Array<{ state: string }>>;
}

export interface MetricsSources {
  nodeId: string;
  role: string;
  version: string;
  pool: pg.Pool;
  poolMax: number;
  cache: ResolverCache;
  redis?: Redis;
  resolver: ResolverService;
  federation?: FederationFigures;
}

const PROMETHEUS_TYPE = Registry.PROMETHEUS_CONTENT_TYPE;

export class Metrics {
  readonly registry = new Registry();
  readonly contentType = PROMETHEUS_TYPE;
  private readonly requests = new RequestHistogram();

  constructor(private readonly sources: MetricsSources) {
    collectDefaultMetrics({ register: this.registry });
    const add = (name: string, help: string, type: Collected['type'], samples: () => Sample[] | Promise<Sample[]>) =>
      this.registry.registerMetric(new ScrapedMetric(name, help, type, samples) as unknown as Metric);
    const one = (value: number, labels: Labels = {}): Sample[] => [{ value, labels }];
    const { resolver, cache, pool, redis, federation } = sources;

    add('snode_info', 'The node: its id, role and software version (always 1).', 'gauge', () =>
      one(1, { node_id: sources.nodeId, role: sources.role, version: sources.version }));
    add('snode_http_request_duration_seconds', 'HTTP requests by method, route (as registered) and status: duration histogram; its _count is the request counter.', 'histogram', () =>
      this.requests.samples());
    add('snode_resolutions_total', 'Resolved handles by the tier that answered (l1, redis, postgres, upstream) and outcome (found; miss: no such handle).', 'counter', () =>
      TIERS.flatMap((tier, t) => [
        { value: resolver.tiers[t * 2]!, labels: { tier, outcome: 'found' } },
        { value: resolver.tiers[t * 2 + 1]!, labels: { tier, outcome: 'miss' } },
      ]));
    add('snode_cache_hit_ratio', 'Share of resolutions answered by a cache tier (L1 or Redis) since the process started; use rate() of snode_resolutions_total for a window.', 'gauge', () => {
      const t = resolver.tiers;
      const cached = t[0]! + t[1]! + t[2]! + t[3]!;
      const total = t.reduce((a, b) => a + b, 0);
      return one(total === 0 ? 0 : cached / total);
    });
    add('snode_cache_l1_entries', 'Answers held in the in-process L1 cache.', 'gauge', () => one(cache.l1.stats.entries));
    add('snode_cache_l1_bytes', 'Bytes the L1 cache holds (bounded by CACHE_MEMORY_BYTES).', 'gauge', () => one(cache.l1.stats.bytes));
    add('snode_cache_l1_max_bytes', 'CACHE_MEMORY_BYTES: the L1 cache bound (0: L1 off).', 'gauge', () => one(cache.l1.stats.maxBytes));
    add('snode_postgres_pool_connections', 'Postgres connections of this process by state: idle, busy; waiting: queries queued for a connection.', 'gauge', () => [
      { value: pool.idleCount, labels: { state: 'idle' } },
      { value: pool.totalCount - pool.idleCount, labels: { state: 'busy' } },
      { value: pool.waitingCount, labels: { state: 'waiting' } },
    ]);
    add('snode_postgres_pool_max', 'PG_POOL_MAX: most Postgres connections this process opens.', 'gauge', () => one(sources.poolMax));
    add('snode_redis_up', '1 when the Redis connection is ready; 0 when it is down or reconnecting; absent without REDIS_URL.', 'gauge', () =>
      (redis ? one(redis.status === 'ready' ? 1 : 0) : []));
    if (redis) {
      // The whole Redis server and database, whoever else uses them: absent when Redis is down or slow.
      const figures = perScrape(() => readRedisFigures(redis));
      const shared = 'shared by every process and REDIS_KEY_PREFIX that use this Redis, not only this node\'s cache';
      add('snode_redis_memory_used_bytes', `Bytes the Redis server uses (INFO memory used_memory): the whole server, ${shared}.`, 'gauge', async () => {
        const f = await figures();
        return f ? one(f.usedMemory) : [];
      });
      add('snode_redis_memory_max_bytes', `The Redis server's maxmemory (0: no limit; then Redis grows until the machine runs out): ${shared}.`, 'gauge', async () => {
        const f = await figures();
        return f ? one(f.maxMemory) : [];
      });
      add('snode_redis_db_keys', `Keys in the Redis database this node selected (DBSIZE), db its index: every key of that database, ${shared}.`, 'gauge', async () => {
        const f = await figures();
        return f ? one(f.keys, { db: f.db }) : [];
      });
    }

    if (federation) {
      const status = perScrape(async () => federation.status().catch(() => undefined));
      add('snode_upstream_up', '1 when the last request to the current top-level endpoint succeeded.', 'gauge', async () => {
        const u = (await status())?.upstream;
        return u ? one(u.consecutiveFailures === 0 && u.lastSuccessAt !== null ? 1 : 0) : [];
      });
      add('snode_upstream_endpoint', 'Index in UPSTREAM_URLS of the endpoint requests go to now (0: the first).', 'gauge', async () => {
        const u = (await status())?.upstream;
        return u ? one(u.currentIndex) : [];
      });
      add('snode_upstream_consecutive_failures', 'Failures in a row of the current top-level endpoint.', 'gauge', async () => {
        const u = (await status())?.upstream;
        return u ? one(u.consecutiveFailures) : [];
      });
      add('snode_upstream_failovers_total', 'Moves to another UPSTREAM_URLS endpoint since start.', 'counter', async () => {
        const u = (await status())?.upstream;
        return u ? one(u.failovers) : [];
      });
      add('snode_outbox_backlog', 'Identifier changes committed and not yet acknowledged by the top-level node (the whole database).', 'gauge', async () => {
        const o = (await status())?.outbox;
        return o ? one(o.backlog) : [];
      });
      add('snode_outbox_oldest_age_seconds', 'Age of the oldest unacknowledged change.', 'gauge', async () => {
        const o = (await status())?.outbox;
        return o ? one(o.oldestUnsentAgeS) : [];
      });
      add('snode_outbox_acked_seq', 'Last sequence number the top-level node acknowledged.', 'gauge', async () => {
        const o = (await status())?.outbox;
        return o ? one(o.ackedSeq) : [];
      });
      add('snode_sync_sender_leader', '1 when this process is the one sender of its database.', 'gauge', async () => {
        const s = (await status())?.sender;
        return s ? one(s.leader ? 1 : 0) : [];
      });
      add('snode_sync_sent_events_total', 'Changes this process sent upstream since start.', 'counter', async () => {
        const s = (await status())?.sender;
        return s ? one(s.sentEvents) : [];
      });
      if (federation.nodeStates) {
        const nodeStates = federation.nodeStates.bind(federation);
        add('snode_federation_nodes', 'top-level role: registered secondary nodes by state (up, down, unknown).', 'gauge', async () => {
          const nodes = await nodeStates().catch(() => undefined);
          if (!nodes) return [];
          const by = new Map<string, number>([['up', 0], ['down', 0], ['unknown', 0]]);
          for (const n of nodes) by.set(n.state, (by.get(n.state) ?? 0) + 1);
          return [...by].map(([state, value]) => ({ value, labels: { state } }));
        });
      }
    }
  }

  /**
   * Times every route: an onResponse hook made once per route as it is registered (so a request
   * allocates nothing), and requests that matched no route under route "(unmatched)". Call before
   * the routes are registered.
   */
  instrument(app: FastifyInstance): void {
    app.addHook('onRoute', (route: RouteOptions) => {
      const methods = Array.isArray(route.method) ? route.method : [route.method];
      const record = methods.length === 1 ? this.requests.recorder(methods[0]!, route.url) : undefined;
      const perMethod = new Map<string, (status: number, seconds: number) => void>();
      const hook = (request: FastifyRequest, reply: FastifyReply, done: HookHandlerDoneFunction) => {
        let r = record;
        if (r === undefined) {
          r = perMethod.get(request.method);
          if (r === undefined) perMethod.set(request.method, (r = this.requests.recorder(request.method, route.url)));
        }
        r(reply.statusCode, reply.elapsedTime / 1000);
        done();
      };
      const existing = route.onResponse;
      route.onResponse = (existing === undefined ? [hook] : [...(Array.isArray(existing) ? existing : [existing]), hook]) as never;
    });
    const unmatched = new Map<string, (status: number, seconds: number) => void>();
    app.addHook('onResponse', (request, reply, done) => {
      if (request.is404) {
        let r = unmatched.get(request.method);
        if (r === undefined) unmatched.set(request.method, (r = this.requests.recorder(request.method, '(unmatched)')));
        r(reply.statusCode, reply.elapsedTime / 1000);
      }
      done();
    });
  }

  async text(): Promise<string> {
    return this.registry.metrics();
  }

  /**
   * METRICS_PORT: /metrics on a plain HTTP listener of its own, no key (where it binds is the
   * access control). Anything else answers 404.
   */
  async listen(host: string, port: number): Promise<{ server: Server; url: string }> {
    const server = createServer((req, res) => {
      const path = (req.url ?? '').split('?', 1)[0];
      if ((req.method === 'GET' || req.method === 'HEAD') && path === '/metrics') {
        this.text().then(
          (body) => {
            res.writeHead(200, { 'content-type': this.contentType, 'cache-control': 'no-store' });
            res.end(req.method === 'HEAD' ? undefined : body);
          },
          () => {
            res.writeHead(500, { 'content-type': 'text/plain; charset=utf-8' }).end('metrics failed\n');
          },
        );
        return;
      }
      res.writeHead(404, { 'content-type': 'application/json; charset=utf-8' });
      res.end(JSON.stringify({ error: { code: 'ROUTE_NOT_FOUND', message: 'this listener serves GET /metrics only', requestId: '' } }));
    });
    server.keepAliveTimeout = 65_000;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    const address = server.address() as AddressInfo;
    const shownHost = address.family === 'IPv6' ? `[${address.address}]` : address.address;
    return { server, url: `http://${shownHost}:${address.port}` };
  }
}
