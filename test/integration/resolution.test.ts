/** GET /api/handles/{handle} and the record cache, on real Postgres and real Redis. */
import { Redis } from 'ioredis';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../src/infra/logger.js';
import { generationShard, RedisCache } from '../../src/resolver/redis-cache.js';
import { encodeFrame, foundEntry } from '../../src/resolver/cache-entry.js';
import { createTestDatabase, type TestDatabase } from '../helpers/databases.js';
import { TEST_REDIS_URL } from '../helpers/env.js';
import { call, onboard, url } from '../helpers/http.js';
import { clearRedisPrefix, newRedisPrefix, startTestNode, type TestNode } from '../helpers/node.js';
import { makeUscc } from '../helpers/uscc.js';

let db: TestDatabase;
let sql: pg.Pool;
let redis: Redis;
let first: TestNode;
let second: TestNode;
let memory: TestNode;
let key: string;
const redisPrefix = newRedisPrefix();

beforeAll(async () => {
  db = await createTestDatabase();
  sql = new pg.Pool({ connectionString: db.url, max: 2 });
  redis = new Redis(TEST_REDIS_URL);
  // Two processes' worth of nodes sharing one database and one Redis, and one without Redis.
  first = await startTestNode({ databaseUrl: db.url, redis: true, redisKeyPrefix: redisPrefix });
  second = await startTestNode({ databaseUrl: db.url, redis: true, redisKeyPrefix: redisPrefix });
  memory = await startTestNode({ databaseUrl: db.url, redis: false });
  ({ key } = await onboard(first.url, first.adminKey, makeUscc(201), '88.118.8'));
});

afterAll(async () => {
  await Promise.all([first?.close(), second?.close(), memory?.close()]);
  await clearRedisPrefix(redisPrefix);
  redis?.disconnect();
  await sql?.end();
  await db?.drop();
});

const put = (handle: string, values: unknown[], base = first.url) => call(base, 'PUT', `/api/handles/${handle}`, { key, body: { values } });
const get = (handle: string, query = '', base = first.url) => call(base, 'GET', `/api/handles/${handle}${query}`);
/** Changes a record behind the node's back, so a stale cache shows. */
const sneak = (suffix: string, value: string) =>
  sql.query(
    `UPDATE identifiers SET handle_values = jsonb_set(handle_values::jsonb, '{0,data,value}', to_jsonb($2::text))::json WHERE prefix = '88.118.8' AND suffix = $1`,
    [suffix, value],
  );

describe('resolution', () => {
  beforeAll(async () => {
    await put('88.118.8/R1', [
      url('https://example.com/1', 1),
      url('https://mirror.example.com/1', 2),
      { index: 2 + 1, type: 'URL.MIRROR', data: { format: 'string', value: 'https://cn.example.com/1' } },
      { index: 4, type: 'EMAIL', data: { format: 'string', value: 'qa@example.com' } },
      { index: 2000, type: 'Material', data: { format: 'string', value: 'Q235' } },
    ]);
    await put('88.118.8/R1-DUP', [url('x')]);
  });

  it('answers the whole record in Handle REST form with an ETag', async () => {
    const r = await get('88.118.8/R1');
    expect(r.status).toBe(200);
    expect(r.headers.get('etag')).toBe('"1"');
    expect(r.body.responseCode).toBe(1);
    expect(r.body.handle).toBe('88.118.8/R1');
    expect(r.body.values.map((v: { index: number }) => v.index)).toEqual([1, 2, 3, 4, 100, 2000]);
    expect(Object.keys(r.body.values[0])).toEqual(['index', 'type', 'data', 'ttl', 'timestamp']);
  });

  it('filters by type (case-insensitive, any match, subtypes with a trailing dot) and by index', async () => {
    const indexes = async (query: string) => (await get('88.118.8/R1', query)).body.values.map((v: { index: number }) => v.index);
    expect(await indexes('?type=url')).toEqual([1, 2]);
    expect(await indexes('?type=URL.')).toEqual([1, 2, 3]);
    expect(await indexes('?type=EMAIL&type=material')).toEqual([4, 2000]);
    expect(await indexes('?index=4')).toEqual([4]);
    expect(await indexes('?type=EMAIL&index=1&index=100')).toEqual([1, 4, 100]);
  });

  it('answers responseCode 200 with no values when filters match nothing', async () => {
    const r = await get('88.118.8/R1', '?type=NOPE');
    expect(r.status).toBe(200);
    expect(r.body).toEqual({ responseCode: 200, handle: '88.118.8/R1', values: [] });
  });

  it('pretty-prints on request', async () => {
    const r = await get('88.118.8/R1', '?pretty&type=EMAIL');
    expect(r.text).toContain('\n  "responseCode": 1');
    expect(JSON.parse(r.text).values[0].type).toBe('EMAIL');
  });

  it('matches prefixes case-insensitively and suffixes exactly', async () => {
    const created = await call(first.url, 'PUT', '/api/handles/88.118.ab/Case', { key: first.adminKey, body: { values: [url('x')] } });
    expect(created.body.handle).toBe('88.118.AB/Case');
    expect((await get('88.118.AB/Case')).body.handle).toBe('88.118.AB/Case');
    expect((await get('88.118.ab/Case')).body.handle).toBe('88.118.AB/Case');
    expect((await get('88.118.ab/case')).status).toBe(404);
    expect((await get('88.118.8/r1')).status).toBe(404);
  });

  it('answers 404 responseCode 100 for an unknown handle and 400 responseCode 102 for a malformed one', async () => {
    const missing = await get('88.118.8/NOPE');
    expect(missing.status).toBe(404);
    expect(missing.body).toMatchObject({ responseCode: 100, handle: '88.118.8/NOPE', code: 'HANDLE_NOT_FOUND' });
    for (const bad of ['no-slash', '88.118.8/', '88.1_18/x', '88.118.8/a%00b', '88.118.8/a%0Ab']) {
      const r = await get(bad);
      expect(r.status, bad).toBe(400);
      expect(r.body.responseCode, bad).toBe(102);
    }
  });

  it('refuses bad filter parameters with 400', async () => {
    expect((await get('88.118.8/R1', '?index=abc')).status).toBe(400);
  });
});

describe('cache (Redis)', () => {
  it('caches a resolved record in Redis for no longer than its smallest TTL', async () => {
    await put('88.118.8/C-TTL', [{ ...url('x'), ttl: 120 }, { index: 2, type: 'EMAIL', data: { format: 'string', value: 'e' }, ttl: 600 }]);
    expect(await redis.exists(`${redisPrefix}rec:88.118.8/C-TTL`)).toBe(0);
    await get('88.118.8/C-TTL');
    await expect.poll(() => redis.exists(`${redisPrefix}rec:88.118.8/C-TTL`)).toBe(1); // stored after the answer went out
    const ttl = await redis.ttl(`${redisPrefix}rec:88.118.8/C-TTL`);
    expect(ttl).toBeGreaterThan(100);
    expect(ttl).toBeLessThanOrEqual(120);
  });

  it('serves later resolves from the cache; auth=true reads Postgres', async () => {
    await put('88.118.8/C-HIT', [url('original')]);
    await get('88.118.8/C-HIT');
    await sneak('C-HIT', 'changed behind the cache');
    expect((await get('88.118.8/C-HIT')).body.values[0].data.value).toBe('original');
    expect((await get('88.118.8/C-HIT', '?auth=true')).body.values[0].data.value).toBe('changed behind the cache');
  });

  it('sees a write at once on the writing process, and within a bounded wait on another one sharing Redis', async () => {
    await put('88.118.8/C-INV', [url('v1')]);
    expect((await get('88.118.8/C-INV', '', first.url)).body.values[0].data.value).toBe('v1');
    expect((await get('88.118.8/C-INV', '', second.url)).body.values[0].data.value).toBe('v1');
    await put('88.118.8/C-INV', [url('v2')], second.url);
    expect((await get('88.118.8/C-INV', '', second.url)).body.values[0].data.value).toBe('v2');
    // The other process drops its L1 copy when the invalidation message reaches it.
    await expect.poll(async () => (await get('88.118.8/C-INV', '', first.url)).body.values[0].data.value, { timeout: 5000, interval: 20 }).toBe('v2');
    await call(first.url, 'DELETE', '/api/handles/88.118.8/C-INV', { key });
    await expect.poll(async () => (await get('88.118.8/C-INV', '', second.url)).status, { timeout: 5000, interval: 20 }).toBe(404);
  });

  it('never caches a record with a TTL 0 value', async () => {
    await put('88.118.8/C-ZERO', [url('a'), { ...url('b', 2), ttl: 0 }]);
    await get('88.118.8/C-ZERO');
    expect(await redis.exists(`${redisPrefix}rec:88.118.8/C-ZERO`)).toBe(0);
    await sneak('C-ZERO', 'fresh');
    expect((await get('88.118.8/C-ZERO')).body.values[0].data.value).toBe('fresh');
  });

  it('does not let a load that started before an invalidation store its stale record', async () => {
    const cache = new RedisCache(redis, redisPrefix, createLogger('silent'));
    const frame = encodeFrame(foundEntry({ handle: '88.118.8/RACE', version: 1, values: [] }, Date.now() + 60_000));
    const [lookup] = await cache.getMany(['88.118.8/RACE']);
    expect(lookup!.frame).toBeUndefined();
    await cache.invalidate(['88.118.8/RACE']); // a write commits while the load is in flight
    await cache.set('88.118.8/RACE', frame, 60_000, lookup!.token);
    expect(await redis.exists(`${redisPrefix}rec:88.118.8/RACE`)).toBe(0);
    const [next] = await cache.getMany(['88.118.8/RACE']);
    await cache.set('88.118.8/RACE', frame, 60_000, next!.token);
    expect(await redis.exists(`${redisPrefix}rec:88.118.8/RACE`)).toBe(1);
  });

  it('counts generations per shard: a write to a handle of the same shard skips the store, one of another shard does not', async () => {
    const cache = new RedisCache(redis, redisPrefix, createLogger('silent'));
    const target = '88.118.8/SHARD-0';
    const shard = generationShard(target);
    let same = '';
    let other = '';
    for (let i = 1; same === '' || other === ''; i += 1) {
      const h = `88.118.8/SHARD-${i}`;
      if (generationShard(h) === shard) same ||= h;
      else other ||= h;
    }
    const frame = encodeFrame(foundEntry({ handle: target, version: 1, values: [] }, Date.now() + 60_000));
    let [lookup] = await cache.getMany([target]);
    await cache.invalidate([other]);
    await cache.set(target, frame, 60_000, lookup!.token);
    expect(await redis.exists(`${redisPrefix}rec:${target}`)).toBe(1);

    [lookup] = await cache.getMany([target]);
    expect(lookup!.frame).toBeDefined();
    await cache.invalidate([target]);
    [lookup] = await cache.getMany([target]);
    await cache.invalidate([same]);
    await cache.set(target, frame, 60_000, lookup!.token);
    expect(await redis.exists(`${redisPrefix}rec:${target}`)).toBe(0);
  });

  it('invalidates a write of many handles in one go: every frame dropped, every handle announced', async () => {
    const cache = new RedisCache(redis, redisPrefix, createLogger('silent'));
    const handles = Array.from({ length: 1200 }, (_, i) => `88.118.8/MANY-${i}`);
    for (const h of handles) await redis.set(`${redisPrefix}rec:${h}`, 'frame');
    const heard: string[] = [];
    const connection = redis.duplicate();
    const listener = new RedisCache(connection, redisPrefix, createLogger('silent'));
    await listener.listen({ handles: (hs) => heard.push(...hs), reset: () => undefined });
    try {
      await cache.invalidate(handles);
      expect(await redis.exists(...handles.map((h) => `${redisPrefix}rec:${h}`))).toBe(0);
      await expect.poll(() => heard.length).toBe(handles.length);
      expect(new Set(heard)).toEqual(new Set(handles));
    } finally {
      await listener.close();
      connection.disconnect();
    }
  });
});

describe('cache (in-process, no REDIS_URL)', () => {
  it('caches, invalidates on write and honours auth=true and TTL 0', async () => {
    await put('88.118.8/M-1', [url('v1')], memory.url);
    expect((await get('88.118.8/M-1', '', memory.url)).body.values[0].data.value).toBe('v1');
    await sneak('M-1', 'behind');
    expect((await get('88.118.8/M-1', '', memory.url)).body.values[0].data.value).toBe('v1');
    expect((await get('88.118.8/M-1', '?auth=true', memory.url)).body.values[0].data.value).toBe('behind');
    await put('88.118.8/M-1', [url('v2')], memory.url);
    expect((await get('88.118.8/M-1', '', memory.url)).body.values[0].data.value).toBe('v2');
    await put('88.118.8/M-0', [{ ...url('a'), ttl: 0 }], memory.url);
    await get('88.118.8/M-0', '', memory.url);
    await sneak('M-0', 'fresh');
    expect((await get('88.118.8/M-0', '', memory.url)).body.values[0].data.value).toBe('fresh');
  });
});

describe('Redis unreachable', () => {
  it('keeps registering and resolving from Postgres, and /readyz says the cache is down', async () => {
    const node = await startTestNode({ databaseUrl: db.url, redis: 'redis://127.0.0.1:1' });
    try {
      expect((await call(node.url, 'PUT', '/api/handles/88.118.8/NO-REDIS', { key, body: { values: [url('pg')] } })).status).toBe(200);
      const r = await get('88.118.8/NO-REDIS', '', node.url);
      expect(r.status).toBe(200);
      expect(r.body.values[0].data.value).toBe('pg');
      const ready = await call(node.url, 'GET', '/readyz');
      expect(ready.status).toBe(503);
      expect(ready.body).toMatchObject({ status: 'not ready', postgres: 'up', cache: 'down' });
      expect((await call(node.url, 'GET', '/healthz')).status).toBe(200);
    } finally {
      await node.close();
    }
  });
});
