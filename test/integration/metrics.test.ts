/**
 * Prometheus metrics on real nodes (real Postgres and Redis): a known sequence of requests moves
 * exactly the series it should; /metrics needs an auditor or admin key on the API port, and none
 * on METRICS_PORT; METRICS=false serves nothing. The nodes share a redis-server of this file's own,
 * so its size figures can be checked against what the test reads from it, and it can be stalled.
 */
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../helpers/databases.js';
import { call, onboard, url } from '../helpers/http.js';
import { startTestNode, type TestNode } from '../helpers/node.js';
import { OwnRedis } from '../helpers/redis-server.js';
import { makeUscc } from '../helpers/uscc.js';

let db: TestDatabase;
let redis: Redis;
let a: TestNode;
let b: TestNode;
let off: TestNode;
let key: string;
let auditor: string;
let ownRedis: OwnRedis;
const redisPrefix = 'snode-metrics:';

/** name{labels} -> value, labels in the order printed. */
function parse(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const at = line.lastIndexOf(' ');
    out.set(line.slice(0, at), Number(line.slice(at + 1)));
  }
  return out;
}

async function scrape(node: TestNode, as = auditor): Promise<Map<string, number>> {
  const answer = await call(node.url, 'GET', '/metrics', { key: as });
  expect(answer.status).toBe(200);
  expect(answer.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
  return parse(answer.text);
}

const tier = (tierName: string, outcome: 'found' | 'miss') => `snode_resolutions_total{tier="${tierName}",outcome="${outcome}"}`;
const requests = (method: string, route: string, status: number) => `snode_http_request_duration_seconds_count{method="${method}",route="${route}",status="${status}"}`;
const delta = (after: Map<string, number>, before: Map<string, number>, name: string) => (after.get(name) ?? 0) - (before.get(name) ?? 0);

beforeAll(async () => {
  db = await createTestDatabase();
  ownRedis = await OwnRedis.create();
  await ownRedis.start();
  redis = new Redis(ownRedis.url);
  a = await startTestNode({ databaseUrl: db.url, redis: ownRedis.url, redisKeyPrefix: redisPrefix, env: { NEGATIVE_CACHE_TTL: '60' } });
  // B shares A's database and Redis, serves metrics on a port of its own, and federates with a
  // top-level node that is not there (its outbox fills, its upstream is down).
  b = await startTestNode({
    databaseUrl: db.url,
    redis: ownRedis.url,
    redisKeyPrefix: redisPrefix,
    env: { METRICS_PORT: '0', UPSTREAM_URLS: 'http://127.0.0.1:9', SYNC_RETRY_BASE_MS: '60000', SYNC_RETRY_MAX_MS: '60000', HEARTBEAT_INTERVAL_MS: '3600000' },
  });
  off = await startTestNode({ databaseUrl: db.url, redis: false, env: { METRICS: 'false' } });
  ({ key } = await onboard(a.url, a.adminKey, makeUscc(811), '88.118.81'));
  auditor = (await call(a.url, 'POST', '/api/admin/keys', { key: a.adminKey, body: { role: 'auditor' } })).body.key;
});

afterAll(async () => {
  await Promise.all([a?.close(), b?.close(), off?.close()]);
  redis?.disconnect();
  await ownRedis?.stop();
  await db?.drop();
});

describe('metrics', () => {
  it('counts requests by route and status, and resolutions by tier', async () => {
    expect((await call(a.url, 'PUT', '/api/handles/88.118.81/M-1', { key, body: { values: [url('https://example.com/m1')] } })).status).toBe(200);
    const before = await scrape(a);

    // Postgres (found), then L1 (found); a missing handle: Postgres (miss), then L1's negative entry.
    for (const handle of ['88.118.81/M-1', '88.118.81/M-1', '88.118.81/NOPE', '88.118.81/NOPE']) await call(a.url, 'GET', `/api/handles/${handle}`);
    expect((await call(a.url, 'POST', '/api/resolve', { body: { handles: ['88.118.81/M-1', 'not a handle'] } })).status).toBe(200);
    expect((await call(a.url, 'POST', '/no/such/route')).status).toBe(404);
    expect((await call(a.url, 'PUT', '/api/handles/88.118.81/M-2', { body: { values: [url('https://example.com/m2')] } })).status).toBe(401);

    const after = await scrape(a);
    expect(delta(after, before, tier('postgres', 'found'))).toBe(1);
    expect(delta(after, before, tier('l1', 'found'))).toBe(2); // the second GET and the batch
    expect(delta(after, before, tier('postgres', 'miss'))).toBe(1);
    expect(delta(after, before, tier('l1', 'miss'))).toBe(1);
    expect(delta(after, before, tier('redis', 'found'))).toBe(0);
    expect(delta(after, before, tier('upstream', 'found'))).toBe(0);
    expect(delta(after, before, requests('GET', '/api/handles/*', 200))).toBe(2);
    expect(delta(after, before, requests('GET', '/api/handles/*', 404))).toBe(2);
    expect(delta(after, before, requests('POST', '/api/resolve', 200))).toBe(1);
    expect(delta(after, before, requests('POST', '(unmatched)', 404))).toBe(1);
    expect(delta(after, before, requests('PUT', '/api/handles/*', 401))).toBe(1);
    expect(delta(after, before, requests('GET', '/metrics', 200))).toBe(1); // the first scrape
    // Every request lands in a bucket: +Inf equals the count.
    expect(after.get('snode_http_request_duration_seconds_bucket{method="GET",route="/api/handles/*",status="200",le="+Inf"}'))
      .toBe(after.get(requests('GET', '/api/handles/*', 200)));

    expect(after.get('snode_cache_l1_entries')).toBeGreaterThanOrEqual(2);
    expect(after.get('snode_cache_l1_bytes')).toBeGreaterThan(0);
    expect(after.get('snode_cache_l1_max_bytes')).toBe(a.config.CACHE_MEMORY_BYTES);
    const hits = after.get('snode_cache_hit_ratio')!;
    expect(hits).toBeGreaterThan(0);
    expect(hits).toBeLessThan(1);
    expect(after.get('snode_postgres_pool_max')).toBe(a.config.PG_POOL_MAX);
    expect(after.get('snode_postgres_pool_connections{state="busy"}')).toBeGreaterThanOrEqual(0);
    expect(after.get('snode_redis_up')).toBe(1);
    expect(after.has('snode_redis_db_keys{db="0"}')).toBe(true);
    expect(after.get('nodejs_eventloop_lag_p99_seconds')).toBeGreaterThanOrEqual(0);
    expect([...after.keys()].some((k) => k.startsWith('snode_info{node_id="snode-1",role="secondary",version="'))).toBe(true);
    // No federation on A: no federation series.
    expect([...after.keys()].some((k) => k.startsWith('snode_outbox_'))).toBe(false);
  });

  it("reports the Redis server's memory and its database's keys, as Redis itself counts them", async () => {
    await redis.config('SET', 'maxmemory', String(96 * 1024 * 1024));
    /** A scrape with DBSIZE and used_memory read around it, retried until the keys did not move meanwhile. */
    const usedMemory = async () => Number(/used_memory:(\d+)/.exec(await redis.info('memory'))![1]);
    const scrapeBetween = async () => {
      for (let attempt = 0; attempt < 20; attempt += 1) {
        const [keys, memory] = [await redis.dbsize(), await usedMemory()];
        const figures = await scrape(a);
        if ((await redis.dbsize()) === keys) return { figures, keys, memory: [memory, await usedMemory()] as const };
      }
      throw new Error('the Redis keyspace kept moving');
    };
    const keysOf = (m: Map<string, number>) => m.get('snode_redis_db_keys{db="0"}')!;
    const usedOf = (m: Map<string, number>) => m.get('snode_redis_memory_used_bytes')!;

    const before = await scrapeBetween();
    expect(before.figures.get('snode_redis_memory_max_bytes')).toBe(96 * 1024 * 1024);
    expect(keysOf(before.figures)).toBe(before.keys);
    expect(Math.abs(usedOf(before.figures) - before.memory[0])).toBeLessThan(1 << 20);

    // 20 records of ~20 KB, resolved once each: 20 frames of at least that in Redis.
    const handles = Array.from({ length: 20 }, (_, i) => `88.118.81/BIG-${i}`);
    for (const h of handles) expect((await call(a.url, 'PUT', `/api/handles/${h}`, { key, body: { values: [url(`https://example.com/${'x'.repeat(20_000)}`)] } })).status).toBe(200);
    for (const h of handles) expect((await call(a.url, 'GET', `/api/handles/${h}`)).status).toBe(200);
    await expect.poll(() => redis.exists(...handles.map((h) => `${redisPrefix}rec:${h}`))).toBe(20);

    const after = await scrapeBetween();
    expect(keysOf(after.figures)).toBe(after.keys);
    expect(keysOf(after.figures) - keysOf(before.figures)).toBeGreaterThanOrEqual(20);
    expect(usedOf(after.figures) - usedOf(before.figures)).toBeGreaterThan(20 * 20_000);
    expect(Math.abs(usedOf(after.figures) - after.memory[0])).toBeLessThan(1 << 20);
  });

  it('has no Redis series without REDIS_URL', async () => {
    const alone = await startTestNode({ databaseUrl: db.url, redis: false });
    try {
      const figures = await scrape(alone, alone.adminKey || a.adminKey);
      expect([...figures.keys()].filter((k) => k.startsWith('snode_redis_'))).toEqual([]);
      expect(figures.has('snode_cache_l1_bytes')).toBe(true);
    } finally {
      await alone.close();
    }
  });

  it('leaves the Redis figures out, and answers, while Redis stalls', async () => {
    // Every client's commands wait (CLIENT UNPAUSE would wait too): a Redis that accepts and does not answer.
    const pausedFor = 3000;
    const pausedUntil = Date.now() + pausedFor;
    await redis.call('CLIENT', 'PAUSE', String(pausedFor), 'ALL');
    const figures = parse((await call(b.node.metricsUrl!, 'GET', '/metrics')).text);
    expect(Date.now()).toBeLessThan(pausedUntil); // answered while Redis was still paused
    expect(figures.get('snode_redis_up')).toBe(1); // connected, only slow
    expect([...figures.keys()].filter((k) => /^snode_redis_(memory|db)/.test(k))).toEqual([]);
    expect(figures.has('snode_outbox_backlog')).toBe(true); // the rest of the scrape is there

    await new Promise((r) => setTimeout(r, pausedUntil - Date.now() + 100));
    await expect.poll(async () => parse((await call(b.node.metricsUrl!, 'GET', '/metrics')).text).has('snode_redis_memory_used_bytes'), { timeout: 5000 }).toBe(true);
  });

  it('a Redis hit on another process is counted as redis', async () => {
    expect((await call(a.url, 'PUT', '/api/handles/88.118.81/SHARED', { key, body: { values: [url('https://example.com/s')] } })).status).toBe(200);
    expect((await call(a.url, 'GET', '/api/handles/88.118.81/SHARED')).status).toBe(200);
    // A stores the frame in Redis after answering: wait until it is there, then ask B.
    await expect.poll(() => redis.exists(`${redisPrefix}rec:88.118.81/SHARED`)).toBe(1);
    const before = parse((await call(b.node.metricsUrl!, 'GET', '/metrics')).text);
    expect((await call(b.url, 'GET', '/api/handles/88.118.81/SHARED')).status).toBe(200);
    const after = parse((await call(b.node.metricsUrl!, 'GET', '/metrics')).text);
    expect(delta(after, before, tier('redis', 'found'))).toBe(1);
    expect(delta(after, before, tier('postgres', 'found'))).toBe(0);
  });

  it('reports the outbox backlog and the upstream state of a federated node', async () => {
    const before = parse((await call(b.node.metricsUrl!, 'GET', '/metrics')).text);
    expect((await call(b.url, 'PUT', '/api/handles/88.118.81/SYNC-1', { key, body: { values: [url('https://example.com/s1')] } })).status).toBe(200);
    expect((await call(b.url, 'PUT', '/api/handles/88.118.81/SYNC-2', { key, body: { values: [url('https://example.com/s2')] } })).status).toBe(200);
    const after = parse((await call(b.node.metricsUrl!, 'GET', '/metrics')).text);
    expect(delta(after, before, 'snode_outbox_backlog')).toBe(2);
    expect(after.get('snode_upstream_up')).toBe(0);
    expect(after.get('snode_upstream_endpoint')).toBe(0);
    expect(after.get('snode_outbox_acked_seq')).toBe(0);
    expect(after.has('snode_outbox_oldest_age_seconds')).toBe(true);
  });

  it('needs an auditor or admin key on the API port', async () => {
    expect((await call(a.url, 'GET', '/metrics')).status).toBe(401);
    expect((await call(a.url, 'GET', '/metrics', { key })).status).toBe(403);
    expect((await call(a.url, 'GET', '/metrics', { key: a.adminKey })).status).toBe(200);
  });

  it('METRICS_PORT serves them without a key, and only there', async () => {
    const answer = await call(b.node.metricsUrl!, 'GET', '/metrics');
    expect(answer.status).toBe(200);
    expect(answer.text).toContain('# TYPE snode_resolutions_total counter');
    expect((await call(b.node.metricsUrl!, 'GET', '/other')).status).toBe(404);
    expect((await call(b.url, 'GET', '/metrics', { key: auditor })).status).toBe(404);
  });

  it('METRICS=false serves none', async () => {
    expect((await call(off.url, 'GET', '/metrics', { key: off.adminKey || a.adminKey })).status).toBe(404);
    expect(off.node.app.metrics).toBeUndefined();
  });
});
