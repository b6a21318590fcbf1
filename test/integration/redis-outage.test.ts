/** Redis goes away mid-run and comes back: resolution keeps answering, then the caches recover. */
import { Redis } from 'ioredis';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../helpers/databases.js';
import { call, onboard, url } from '../helpers/http.js';
import { startTestNode, type TestNode } from '../helpers/node.js';
import { makeUscc } from '../helpers/uscc.js';
import { OwnRedis } from '../helpers/redis-server.js';
import { createLogger } from '../../src/infra/logger.js';
import { createRedis } from '../../src/infra/redis.js';
import { RedisCache } from '../../src/resolver/redis-cache.js';

let db: TestDatabase;
let sql: pg.Pool;
let node: TestNode;
let key: string;
let redis: OwnRedis;
let port: number;

const startRedis = () => redis.start();
const stopRedis = () => redis.stop();

beforeAll(async () => {
  db = await createTestDatabase();
  sql = new pg.Pool({ connectionString: db.url, max: 2 });
  redis = await OwnRedis.create();
  port = redis.port;
  await startRedis();
  node = await startTestNode({ databaseUrl: db.url, redis: `redis://127.0.0.1:${port}` });
  ({ key } = await onboard(node.url, node.adminKey, makeUscc(901), '88.118.9'));
});

afterAll(async () => {
  await node?.close();
  await stopRedis();
  await sql?.end();
  await db?.drop();
});

const valueOf = async (handle: string) => {
  const r = await call(node.url, 'GET', `/api/handles/${handle}`);
  return r.status === 200 ? r.body.values[0].data.value : r.status;
};

describe('Redis down mid-run', () => {
  it('keeps resolving from Postgres while Redis is away, and the caches recover when it returns', async () => {
    expect((await call(node.url, 'PUT', '/api/handles/88.118.9/KEEP', { key, body: { values: [url('v1')] } })).status).toBe(200);
    expect(await valueOf('88.118.9/KEEP')).toBe('v1'); // now in L1 and Redis

    await stopRedis();
    // Registration and resolution of records the caches never saw: straight from Postgres.
    expect((await call(node.url, 'PUT', '/api/handles/88.118.9/DOWN', { key, body: { values: [url('while down')] } })).status).toBe(200);
    for (let i = 0; i < 20; i += 1) expect(await valueOf('88.118.9/DOWN')).toBe('while down');
    expect((await call(node.url, 'GET', '/api/handles/88.118.9/NEVER')).status).toBe(404);
    const ready = await call(node.url, 'GET', '/readyz');
    expect(ready.body.cache).toBe('down');

    // Behind the node's back while Redis is away: L1 may still say v1, but not after Redis returns.
    await sql.query(
      `UPDATE identifiers SET handle_values = jsonb_set(handle_values::jsonb, '{0,data,value}', '"behind"')::json WHERE prefix = '88.118.9' AND suffix = 'KEEP'`,
    );
    await startRedis();
    // Back: the node drops its L1 (it may have missed invalidations) and reads through again.
    await expect.poll(() => valueOf('88.118.9/KEEP'), { timeout: 15_000, interval: 100 }).toBe('behind');
    const fresh = new Redis({ port });
    try {
      await expect
        .poll(async () => {
          await valueOf('88.118.9/DOWN');
          return fresh.exists('snode:rec:88.118.9/DOWN', ...(await fresh.keys('*rec:88.118.9/DOWN')));
        }, { timeout: 15_000, interval: 100 })
        .toBeGreaterThan(0);
      await expect.poll(async () => (await call(node.url, 'GET', '/readyz')).body.cache, { timeout: 15_000, interval: 100 }).toBe('up');
    } finally {
      fresh.disconnect();
    }
  });

  it('keeps undelivered invalidations bounded: past the limit, the whole tier is reset once Redis is back', async () => {
    const prefix = 'snode-outage-reset:';
    const connection = createRedis(`redis://127.0.0.1:${port}`, createLogger('silent'));
    connection.on('error', () => undefined);
    await connection.connect();
    const cache = new RedisCache(connection, prefix, createLogger('silent'), 5);
    const heard: string[] = [];
    const subscriber = new Redis({ port });
    subscriber.on('message', (_channel: string, message: string) => heard.push(message));
    await subscriber.subscribe(`${prefix}invalidate`);
    const fresh = new Redis({ port });
    try {
      // Frames other processes hold, of any handle, and a generation a load may have read.
      await fresh.set(`${prefix}rec:88.118.9/GONE-1`, 'stale');
      await fresh.set(`${prefix}rec:88.118.9/OTHER`, 'stale');
      await fresh.set(`${prefix}gen:7`, '41');
      // This process loses Redis (the server stays up for the others).
      const ended = new Promise((resolve) => connection.once('end', resolve));
      connection.disconnect();
      await ended;
      await cache.invalidate(Array.from({ length: 12 }, (_, i) => `88.118.9/GONE-${i}`));
      await cache.invalidate(['88.118.9/GONE-12']);
      // 13 handles undelivered, but not kept one by one past the limit of 5.
      expect(cache.undelivered).toBe(13);
      expect((cache as unknown as { pending: Set<string> }).pending.size).toBe(0);
      expect(heard).toEqual([]);
      await connection.connect();
      expect(await cache.deliverPending(15_000)).toBe(0);
      expect(await fresh.exists(`${prefix}rec:88.118.9/GONE-1`, `${prefix}rec:88.118.9/OTHER`)).toBe(0);
      expect(await fresh.get(`${prefix}gen:7`)).toBe('42');
      await expect.poll(() => heard, { timeout: 5_000 }).toEqual(['"reset"']);
    } finally {
      fresh.disconnect();
      subscriber.disconnect();
      await cache.close();
      connection.disconnect();
    }
  });
});
