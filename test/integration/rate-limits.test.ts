/**
 * Rate limits shared by two processes through Redis, per IP (IPv6 by /64) behind a trusted proxy,
 * and revocations reaching another process's key cache at once.
 */
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../helpers/databases.js';
import { call, onboard, url } from '../helpers/http.js';
import { clearRedisPrefix, newRedisPrefix, startTestNode, type TestNode } from '../helpers/node.js';
import { makeUscc } from '../helpers/uscc.js';

let db: TestDatabase;
let sql: pg.Pool;
let a: TestNode;
let b: TestNode;
let ent: { enterpriseId: string; key: string };
const redisKeyPrefix = newRedisPrefix();
const env = {
  RATE_LIMIT_RESOLVE_ANONYMOUS: '10',
  RATE_LIMIT_RESOLVE_KEYED: '1000',
  RATE_LIMIT_REGISTER: '6',
  RATE_LIMIT_ONBOARDING: '3',
  RATE_LIMIT_ADMIN: '12',
  RATE_LIMIT_STATS: '4',
  RATE_LIMIT_AUDIT: '3',
  RATE_LIMIT_SYNC_MS: '60000', // the tests sync when they mean to
  TRUST_PROXY: '127.0.0.1',
};

beforeAll(async () => {
  db = await createTestDatabase();
  sql = new pg.Pool({ connectionString: db.url, max: 2 });
  a = await startTestNode({ databaseUrl: db.url, redis: true, redisKeyPrefix, env });
  b = await startTestNode({ databaseUrl: db.url, redis: true, redisKeyPrefix, env });
  ent = await onboard(a.url, a.adminKey, makeUscc(701), '88.118.7');
  await call(a.url, 'PUT', '/api/handles/88.118.7/R', { key: a.adminKey, body: { values: [url('https://r.example')] } });
});

afterAll(async () => {
  await sql?.end();
  await a?.close();
  await b?.close();
  await db?.drop();
  await clearRedisPrefix(redisKeyPrefix);
});

const from = (ip: string) => ({ 'x-forwarded-for': ip });
const syncAll = async () => {
  for (const n of [a, b]) await n.node.app.rateLimits.sync();
};

describe('registration (counted in process, shared through Redis)', () => {
  it('one budget per key across two processes once they sync; 429 with Retry-After and the rate headers', async () => {
    const put = (n: TestNode, i: number) => call(n.url, 'PUT', `/api/handles/88.118.7/REG-${i}`, { key: ent.key, body: { values: [url('https://x.example')] } });
    const statuses = [];
    for (let i = 0; i < 4; i += 1) statuses.push((await put(i % 2 ? b : a, i)).status);
    await syncAll(); // both know: 4 of 6 spent
    for (let i = 4; i < 6; i += 1) statuses.push((await put(i % 2 ? b : a, i)).status);
    expect(statuses).toEqual([200, 200, 200, 200, 200, 200]);
    await syncAll(); // both know all six
    const refused = await put(b, 6);
    expect(refused.status).toBe(429);
    expect(refused.body).toMatchObject({ responseCode: 3, code: 'RATE_LIMITED' });
    expect(Number(refused.headers.get('retry-after'))).toBeGreaterThan(0);
    expect(refused.headers.get('x-ratelimit-limit')).toBe('6');
    expect(refused.headers.get('x-ratelimit-remaining')).toBe('0');
    // a synced before b, so it heard of five: one more write fits its view (the budget is shared
    // within a sync interval, not exactly), and after the next sync it refuses too.
    expect((await put(a, 7)).status).toBe(200);
    await syncAll();
    expect((await put(a, 8)).status).toBe(429);
    // Refused writes stored nothing.
    expect((await sql.query("SELECT count(*)::int AS n FROM identifiers WHERE suffix LIKE 'REG-%'")).rows[0].n).toBe(7);
    // Another key has its own budget.
    expect((await call(a.url, 'PUT', '/api/handles/88.118.7/REG-admin', { key: a.adminKey, body: { values: [url('https://x.example')] } })).status).toBe(200);
  });
});

describe('anonymous resolution (counted in process, shared through Redis)', () => {
  it('shares one budget per client IP across two processes once they sync', async () => {
    const get = (n: TestNode, ip: string) => call(n.url, 'GET', '/api/handles/88.118.7/R', { headers: from(ip) });
    for (let i = 0; i < 6; i += 1) expect((await get(a, '203.0.113.5')).status).toBe(200);
    expect((await get(b, '203.0.113.5')).status).toBe(200); // b has not heard of a's six yet
    await syncAll(); // now both know: 7 of 10 spent
    const results = [];
    for (let i = 0; i < 4; i += 1) results.push((await get(b, '203.0.113.5')).status);
    expect(results).toEqual([200, 200, 200, 429]);
    const limited = await get(b, '203.0.113.5');
    expect(limited.status).toBe(429);
    expect(limited.body).toMatchObject({ responseCode: 3, code: 'RATE_LIMITED' });
    expect(limited.headers.get('retry-after')).toBeTruthy();
    expect(limited.headers.get('x-ratelimit-limit')).toBe('10');
    expect(limited.headers.get('x-ratelimit-remaining')).toBe('0');
    const other = await get(a, '203.0.113.6'); // another client
    expect(other.status).toBe(200);
    // Answers under the limit carry no rate headers (they cost the line-rate path).
    expect(other.headers.get('x-ratelimit-limit')).toBeNull();
  });

  it('counts an IPv6 /64 as one client', async () => {
    for (let i = 0; i < 10; i += 1) expect((await call(a.url, 'GET', '/api/handles/88.118.7/R', { headers: from(`2001:db8:1:2::${i + 1}`) })).status).toBe(200);
    expect((await call(a.url, 'GET', '/api/handles/88.118.7/R', { headers: from('2001:db8:1:2:ffff::9') })).status).toBe(429);
    expect((await call(a.url, 'GET', '/api/handles/88.118.7/R', { headers: from('2001:db8:1:3::1') })).status).toBe(200);
  });

  it('covers batch resolution and the proxy view, and a key escapes the anonymous budget', async () => {
    const ip = '198.51.100.9';
    for (let i = 0; i < 10; i += 1) expect((await call(a.url, 'POST', '/api/resolve', { headers: from(ip), body: { handles: ['88.118.7/R'] } })).status).toBe(200);
    expect((await call(a.url, 'GET', '/88.118.7/R?noredirect', { headers: from(ip) })).status).toBe(429);
    expect((await call(a.url, 'GET', '/api/handles/88.118.7/R', { headers: from(ip), key: ent.key })).status).toBe(200);
  });

  it('uses the socket address when the proxy is not trusted', async () => {
    // b trusts 127.0.0.1 as a proxy; the audit log records the forwarded client.
    await call(b.url, 'PUT', '/api/handles/88.118.7/IP', { key: a.adminKey, headers: from('192.0.2.77'), body: { values: [url('https://ip.example')] } });
    expect((await sql.query("SELECT client_ip FROM audit_log WHERE target = '88.118.7/IP'")).rows[0].client_ip).toBe('192.0.2.77');
  });
});

describe('onboarding (exact, in Redis)', () => {
  it('allows a few applications per IP across both processes', async () => {
    const body = (i: number) => ({ name: `E${i}`, uscc: makeUscc(710 + i), contact: { name: 'n', email: 'a@b.cn' }, industryCode: 'C' });
    const statuses = [];
    for (let i = 0; i < 4; i += 1) statuses.push((await call(i % 2 ? b.url : a.url, 'POST', '/api/enterprises/apply', { headers: from('192.0.2.1'), body: body(i) })).status);
    expect(statuses).toEqual([201, 201, 201, 429]);
  });
});

describe('administration, statistics and audit (exact, in Redis, per key)', () => {
  const limited = async (key: string, paths: Array<[string, string, unknown?]>, max: number) => {
    const statuses = [];
    for (let i = 0; i <= max; i += 1) {
      const [method, path, body] = paths[i % paths.length]!;
      statuses.push((await call(i % 2 ? b.url : a.url, method, path, { key, ...(body !== undefined ? { body } : {}) })).status);
    }
    return statuses;
  };

  it('admin routes (and an enterprise managing its keys): one budget per key across both processes', async () => {
    const admin = (await call(a.url, 'POST', '/api/admin/keys', { key: a.adminKey, body: { role: 'admin', label: 'limited' } })).body.key;
    const statuses = await limited(admin, [['GET', '/api/admin/enterprises'], ['GET', '/api/admin/keys'], ['GET', `/api/admin/enterprises/${ent.enterpriseId}`]], 12);
    expect(statuses.slice(0, 12).every((s) => s === 200)).toBe(true);
    const refused = await call(a.url, 'GET', '/api/admin/prefixes', { key: admin });
    expect(refused.status).toBe(429);
    expect(refused.body.error.code).toBe('RATE_LIMITED');
    expect(refused.headers.get('x-ratelimit-limit')).toBe('12');
    expect(statuses[12]).toBe(429);
    // The enterprise's own key routes count against its key's admin budget, not the admin's.
    expect((await call(b.url, 'GET', '/api/keys', { key: ent.key })).status).toBe(200);
  });

  it('statistics routes: per key', async () => {
    const auditor = (await call(a.url, 'POST', '/api/admin/keys', { key: a.adminKey, body: { role: 'auditor' } })).body.key;
    const statuses = await limited(auditor, [['GET', '/api/stats/overview'], ['GET', '/api/stats/top?metric=registrations&period=2026']], 4);
    expect(statuses).toEqual([200, 200, 200, 200, 429]);
    expect((await call(a.url, 'GET', '/api/stats/overview', { key: ent.key })).status).toBe(200); // another key
    // Audit routes have a budget of their own.
    expect((await call(a.url, 'GET', '/api/audit?limit=1', { key: auditor })).status).toBe(200);
  });

  it('audit routes: per key', async () => {
    const auditor = (await call(a.url, 'POST', '/api/admin/keys', { key: a.adminKey, body: { role: 'auditor' } })).body.key;
    const statuses = await limited(auditor, [['GET', '/api/audit?limit=1'], ['GET', '/api/audit/head'], ['GET', '/api/audit/verify']], 3);
    expect(statuses).toEqual([200, 200, 200, 429]);
  });
});

describe('revocation', () => {
  it('a key revoked on one process is refused by the other at once', async () => {
    const created = (await call(a.url, 'POST', '/api/admin/keys', { key: a.adminKey, body: { role: 'auditor' } })).body;
    expect((await call(b.url, 'GET', '/api/audit?limit=1', { key: created.key })).status).toBe(200); // now cached on b
    expect((await call(a.url, 'DELETE', `/api/admin/keys/${created.id}`, { key: a.adminKey })).status).toBe(200);
    expect((await call(b.url, 'GET', '/api/audit?limit=1', { key: created.key })).status).toBe(401);
  });

  it('a prefix disabled on one process refuses writes on the other as soon as it hears of it', async () => {
    expect((await call(a.url, 'PATCH', '/api/admin/prefixes/88.118.7', { key: a.adminKey, body: { state: 'disabled' } })).status).toBe(200);
    await new Promise((r) => setTimeout(r, 100)); // b reloads its list of disabled prefixes on the message
    expect((await call(b.url, 'PUT', '/api/handles/88.118.7/OFF', { key: a.adminKey, body: { values: [url('https://x.example')] } })).status).toBe(403);
    await call(a.url, 'PATCH', '/api/admin/prefixes/88.118.7', { key: a.adminKey, body: { state: 'active' } });
  });
});
