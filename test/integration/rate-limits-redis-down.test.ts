/**
 * Rate limits with Redis stopped: resolution, registration and the keyed read policies fail open
 * (resolution keeps a per-process budget), onboarding fails closed (503), and the shared budgets
 * return with Redis.
 */
import { Redis } from 'ioredis';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../helpers/databases.js';
import { call, onboard, url } from '../helpers/http.js';
import { startTestNode, type TestNode } from '../helpers/node.js';
import { OwnRedis } from '../helpers/redis-server.js';
import { makeUscc } from '../helpers/uscc.js';

let db: TestDatabase;
let sql: pg.Pool;
let node: TestNode;
let redis: OwnRedis;
let key: string;

beforeAll(async () => {
  db = await createTestDatabase();
  sql = new pg.Pool({ connectionString: db.url, max: 2 });
  redis = await OwnRedis.create();
  await redis.start();
  node = await startTestNode({
    databaseUrl: db.url,
    redis: redis.url,
    env: { RATE_LIMIT_RESOLVE_ANONYMOUS: '20', RATE_LIMIT_REGISTER: '3', RATE_LIMIT_ONBOARDING: '100', RATE_LIMIT_SYNC_MS: '50', RATE_LIMIT_STATS: '2' },
  });
  ({ key } = await onboard(node.url, node.adminKey, makeUscc(751), '88.118.75'));
  await call(node.url, 'PUT', '/api/handles/88.118.75/R', { key: node.adminKey, body: { values: [url('https://r.example')] } });
});

afterAll(async () => {
  await node?.close();
  await redis?.stop();
  await sql?.end();
  await db?.drop();
});

const applyBody = (i: number) => ({ name: `E${i}`, uscc: makeUscc(760 + i), contact: { name: 'n', email: 'a@b.cn' }, industryCode: 'C' });

describe('Redis stopped', () => {
  it('resolution and registration fail open to a per-process budget, onboarding answers 503', async () => {
    await redis.stop();
    // Resolution: still limited, by this process alone.
    const statuses = [];
    for (let i = 0; i < 21; i += 1) statuses.push((await call(node.url, 'GET', '/api/handles/88.118.75/R')).status);
    expect(statuses.slice(0, 20).every((s) => s === 200)).toBe(true);
    expect(statuses[20]).toBe(429);
    // Registration: counted by this process alone, like resolution (limit 3, five writes).
    const writes = [];
    for (let i = 0; i < 5; i += 1) writes.push((await call(node.url, 'PUT', `/api/handles/88.118.75/W-${i}`, { key, body: { values: [url('https://w.example')] } })).status);
    expect(writes).toEqual([200, 200, 200, 429, 429]);
    expect((await sql.query("SELECT count(*)::int AS n FROM identifiers WHERE suffix LIKE 'W-%'")).rows[0].n).toBe(3);
    // Statistics (as administration and audit): keyed callers, not limited while Redis is away (limit 2, four calls).
    for (let i = 0; i < 4; i += 1) expect((await call(node.url, 'GET', '/api/stats/overview', { key })).status).toBe(200);
    // Onboarding: anonymous writes need a working limit.
    const refused = await call(node.url, 'POST', '/api/enterprises/apply', { body: applyBody(1) });
    expect(refused.status).toBe(503);
    expect(refused.body.error.code).toBe('RATE_LIMIT_UNAVAILABLE');
    expect((await sql.query('SELECT count(*)::int AS n FROM enterprise_applications')).rows[0].n).toBe(0);
  });

  it('enforces the shared budgets again when Redis is back', async () => {
    await redis.start();
    await expect.poll(async () => (await call(node.url, 'POST', '/api/enterprises/apply', { body: applyBody(2) })).status, { timeout: 15_000, interval: 200 }).toBe(201);
    // A key with no history (the admin key's earlier counts were in the Redis that restarted
    // empty): its budget is enforced, and its counts and those made while Redis was away reach it.
    const fresh = (await call(node.url, 'POST', '/api/admin/keys', { key: node.adminKey, body: { role: 'admin', label: 'after the outage' } })).body;
    const statuses = [];
    for (let i = 0; i < 4; i += 1) statuses.push((await call(node.url, 'PUT', `/api/handles/88.118.75/V-${i}`, { key: fresh.key, body: { values: [url('https://v.example')] } })).status);
    expect(statuses).toEqual([200, 200, 200, 429]);
    await node.node.app.rateLimits.sync();
    const client = new Redis(redis.url);
    try {
      const shared = await client.keys('*rl:register:*');
      const counts = new Map(await Promise.all(shared.map(async (k) => [k.slice(k.lastIndexOf(':') + 1), Number(await client.get(k))] as const)));
      expect(counts.get(fresh.id)).toBe(4);
      // The enterprise key's five writes, counted while Redis was away.
      expect([...counts.values()]).toContain(5);
    } finally {
      client.disconnect();
    }
    const stats = [];
    for (let i = 0; i < 3; i += 1) stats.push((await call(node.url, 'GET', '/api/stats/overview', { key: node.adminKey })).status);
    expect(stats).toEqual([200, 200, 429]);
  });
});
