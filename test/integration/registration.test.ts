/** PUT and DELETE /api/handles against a real node on real Postgres and Redis. */
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../helpers/databases.js';
import { call, onboard, url } from '../helpers/http.js';
import { clearRedisPrefix, startTestNode, type TestNode } from '../helpers/node.js';
import { makeUscc } from '../helpers/uscc.js';

let db: TestDatabase;
let node: TestNode;
let key: string;
let sql: pg.Pool;

beforeAll(async () => {
  db = await createTestDatabase();
  node = await startTestNode({ databaseUrl: db.url, redis: true });
  ({ key } = await onboard(node.url, node.adminKey, makeUscc(1), '88.118.8'));
  sql = new pg.Pool({ connectionString: db.url, max: 2 });
});

afterAll(async () => {
  await sql?.end();
  await node?.close();
  if (node) await clearRedisPrefix(node.config.REDIS_KEY_PREFIX);
  await db?.drop();
});

const put = (handle: string, values: unknown[], options: { query?: string; headers?: Record<string, string>; key?: string } = {}) =>
  call(node.url, 'PUT', `/api/handles/${handle}${options.query ?? ''}`, { key: options.key ?? key, body: { values }, headers: options.headers });
const get = (handle: string, query = '', k?: string) => call(node.url, 'GET', `/api/handles/${handle}${query}`, { key: k });
const stored = async (prefix: string, suffix: string) =>
  (await sql.query('SELECT version, handle_values FROM identifiers WHERE prefix = $1 AND suffix = $2', [prefix, suffix])).rows[0];

describe('PUT /api/handles/{handle}', () => {
  it('creates a record with 200, an ETag, server timestamps and an HS_ADMIN value', async () => {
    const before = Date.now();
    const r = await put('88.118.8/PART-0001', [{ ...url('https://example.com/p/1'), timestamp: '1999-01-01T00:00:00Z' }]);
    expect(r.status).toBe(200);
    expect(r.body).toEqual({ responseCode: 1, handle: '88.118.8/PART-0001' });
    expect(r.headers.get('etag')).toBe('"1"');
    const row = await stored('88.118.8', 'PART-0001');
    expect(Number(row.version)).toBe(1);
    const values = (await get('88.118.8/PART-0001')).body.values;
    expect(values.map((v: { index: number }) => v.index)).toEqual([1, 100]);
    expect(values[1]).toMatchObject({ type: 'HS_ADMIN', data: { format: 'admin', value: { handle: '0.NA/88.118.8', index: 200, permissions: '011111110011' } } });
    const stamp = Date.parse(values[0].timestamp);
    expect(stamp).toBeGreaterThanOrEqual(before - 1000);
    expect(values[0].ttl).toBe(86400);
  });

  it('replaces a record, bumps the version and keeps timestamps of unchanged values', async () => {
    await put('88.118.8/REPL', [url('a', 1), url('b', 2)]);
    const first = (await get('88.118.8/REPL')).body.values;
    await new Promise((r) => setTimeout(r, 5));
    const r = await put('88.118.8/REPL', [url('a', 1), url('changed', 2)]);
    expect(r.status).toBe(200);
    expect(r.headers.get('etag')).toBe('"2"');
    const second = (await get('88.118.8/REPL')).body.values;
    expect(second[0].timestamp).toBe(first[0].timestamp);
    expect(second[1].data.value).toBe('changed');
    expect(second[1].timestamp).not.toBe(first[1].timestamp);
  });

  it('answers 201 for a create under overwrite=false or If-None-Match: *, and 409 when it exists', async () => {
    const a = await put('88.118.8/ONCE-A', [url('x')], { query: '?overwrite=false' });
    expect(a.status).toBe(201);
    const b = await put('88.118.8/ONCE-B', [url('x')], { headers: { 'if-none-match': '*' } });
    expect(b.status).toBe(201);
    const again = await put('88.118.8/ONCE-A', [url('y')], { query: '?overwrite=false' });
    expect(again.status).toBe(409);
    expect(again.body).toMatchObject({ responseCode: 101, handle: '88.118.8/ONCE-A', code: 'HANDLE_ALREADY_EXISTS' });
    const againHeader = await put('88.118.8/ONCE-B', [url('y')], { headers: { 'if-none-match': '*' } });
    expect(againHeader.status).toBe(409);
    expect((await get('88.118.8/ONCE-A')).body.values[0].data.value).toBe('x');
    expect(Number((await stored('88.118.8', 'ONCE-A')).version)).toBe(1);
  });

  it('honours If-Match with the record version', async () => {
    await put('88.118.8/COND', [url('v1')]);
    const stale = await put('88.118.8/COND', [url('v2')], { headers: { 'if-match': '"7"' } });
    expect(stale.status).toBe(412);
    expect(stale.body).toMatchObject({ code: 'PRECONDITION_FAILED', handle: '88.118.8/COND' });
    expect((await get('88.118.8/COND')).body.values[0].data.value).toBe('v1');
    const ok = await put('88.118.8/COND', [url('v2')], { headers: { 'if-match': '"1"' } });
    expect(ok.status).toBe(200);
    expect(ok.headers.get('etag')).toBe('"2"');
    const missing = await put('88.118.8/NOPE-COND', [url('v')], { headers: { 'if-match': '*' } });
    expect(missing.status).toBe(412);
    expect(await stored('88.118.8', 'NOPE-COND')).toBeUndefined();
    const bad = await put('88.118.8/COND', [url('v3')], { headers: { 'if-match': 'yesterday' } });
    expect(bad.status).toBe(400);
  });

  it('answers 412 to a weak If-Match tag, which never matches a write', async () => {
    await put('88.118.8/WEAK', [url('v1')]);
    const weak = await put('88.118.8/WEAK', [url('v2')], { headers: { 'if-match': 'W/"1"' } });
    expect(weak.status).toBe(412);
    expect((await get('88.118.8/WEAK')).body.values[0].data.value).toBe('v1');
  });

  it('lets exactly one of many concurrent create-only writes win', async () => {
    const results = await Promise.all(
      Array.from({ length: 10 }, (_, i) => put('88.118.8/RACE', [url(`w${i}`)], { headers: { 'if-none-match': '*' } })),
    );
    expect(results.filter((r) => r.status === 201)).toHaveLength(1);
    expect(results.filter((r) => r.status === 409)).toHaveLength(9);
  });

  it('commits concurrent single writes in shared transactions, each answered, versioned and audited as if alone', async () => {
    const n = 60;
    const creates = await Promise.all(Array.from({ length: n }, (_, i) => put(`88.118.8/GRP-${i}`, [url(`g${i}`)], { query: '?overwrite=false' })));
    expect(creates.map((r) => r.status)).toEqual(Array(n).fill(201));
    expect(creates.map((r) => r.headers.get('etag'))).toEqual(Array(n).fill('"1"'));
    // One transaction stamps its rows with one xmin: fewer xmins than writes means shared commits.
    const { rows } = await sql.query("SELECT count(*)::int AS n, count(DISTINCT xmin::text)::int AS transactions FROM identifiers WHERE prefix = '88.118.8' AND suffix LIKE 'GRP-%'");
    expect(rows[0].n).toBe(n);
    expect(rows[0].transactions).toBeLessThan(n);
    // Each write is audited once, with its own request id.
    const audit = await sql.query("SELECT count(*)::int AS n, count(DISTINCT request_id)::int AS requests FROM audit_log WHERE action = 'identifier.create' AND target LIKE '88.118.8/GRP-%'");
    expect(audit.rows[0]).toEqual({ n, requests: n });
    // A refused write in a shared group fails alone, with the answer it gets alone.
    const mixed = await Promise.all([
      ...Array.from({ length: 20 }, (_, i) => put(`88.118.8/GRP-NEW-${i}`, [url('x')], { query: '?overwrite=false' })),
      put('88.118.8/GRP-0', [url('again')], { query: '?overwrite=false' }),
    ]);
    expect(mixed.slice(0, 20).map((r) => r.status)).toEqual(Array(20).fill(201));
    expect(mixed[20]!.status).toBe(409);
    expect(mixed[20]!.body).toMatchObject({ responseCode: 101, code: 'HANDLE_ALREADY_EXISTS' });
    expect((await get('88.118.8/GRP-0')).body.values[0].data.value).toBe('g0');
  });

  it('serialises concurrent replacements: every write gets its own version', async () => {
    await put('88.118.8/CONC', [url('start')]);
    const results = await Promise.all(Array.from({ length: 10 }, (_, i) => put('88.118.8/CONC', [url(`w${i}`)])));
    expect(results.every((r) => r.status === 200)).toBe(true);
    const versions = results.map((r) => Number(r.headers.get('etag')!.replaceAll('"', ''))).sort((a, b) => a - b);
    expect(versions).toEqual([2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);
  });

  it('refuses invalid values with 400 responseCode 202 and stores nothing', async () => {
    const cases: Array<[unknown[], RegExp]> = [
      [[url('a', 1), url('b', 1)], /index 1 is used by more than one value/],
      [[{ index: 1, type: 'X', data: { format: 'base64', value: '***' } }], /base64/],
      [[{ index: 1, type: 'X', data: { format: 'nope', value: 'x' } }], /format/],
      [[{ index: 1, type: 'X', data: { format: 'string', value: 'x' }, extra: 1 }], /additional/i],
      [[{ index: -4, type: 'X', data: { format: 'string', value: 'x' } }], /index/],
      [[], /values/],
      [[url('x'.repeat(32 * 1024 + 1))], /data is 32769 bytes; at most 32768/],
      // JSON bodies are taken as sent: no silent type conversion.
      [[{ index: '1', type: 'URL', data: { format: 'string', value: 'x' } }], /integer/],
      [[{ index: 1, type: true, data: { format: 'string', value: 'x' } }], /string/],
      [[{ ...url('x'), ttl: null }], /integer/],
    ];
    for (const [values, message] of cases) {
      const r = await put('88.118.8/BAD-VALUE', values);
      expect(r.status, JSON.stringify(values).slice(0, 80)).toBe(400);
      expect(r.body.responseCode).toBe(202);
      expect(r.body.message).toMatch(message);
    }
    expect(await stored('88.118.8', 'BAD-VALUE')).toBeUndefined();
  });

  it('accepts exactly 32 KiB of data in a value and at most 200 values', async () => {
    expect((await put('88.118.8/BIG-OK', [url('x'.repeat(32 * 1024))])).status).toBe(200);
    const many = Array.from({ length: 199 }, (_, i) => url(`v${i}`, i + 1));
    expect((await put('88.118.8/MANY-OK', many)).status).toBe(200);
    const tooMany = Array.from({ length: 200 }, (_, i) => url(`v${i}`, i + 1));
    const r = await put('88.118.8/MANY-BAD', tooMany);
    expect(r.status).toBe(400);
    expect(r.body.message).toMatch(/at most 200 values/);
  });

  it('keeps vlist and site data as written, and their timestamps when unchanged', async () => {
    const values = [
      { index: 6, type: 'HS_SITE', data: { format: 'site', value: { version: 1, protocolVersion: '2.10', servers: [{ serverId: 1, address: '10.0.0.1' }] } } },
      { index: 300, type: 'HS_VLIST', data: { format: 'vlist', value: [{ handle: '0.NA/88.118.8', index: 200 }] } },
    ];
    await put('88.118.8/STRUCT', values);
    const first = (await get('88.118.8/STRUCT', '?type=HS_SITE&type=HS_VLIST')).body.values;
    expect(JSON.stringify(first.map((v: { data: unknown }) => v.data))).toBe(JSON.stringify(values.map((v) => v.data)));
    await new Promise((r) => setTimeout(r, 5));
    await put('88.118.8/STRUCT', values);
    const second = (await get('88.118.8/STRUCT', '?type=HS_SITE&type=HS_VLIST')).body.values;
    expect(second.map((v: { timestamp: string }) => v.timestamp)).toEqual(first.map((v: { timestamp: string }) => v.timestamp));
  });

  it('turns hex input into base64 on the way in', async () => {
    await put('88.118.8/HEX', [{ index: 5, type: 'BLOB', data: { format: 'hex', value: 'cafebabe' } }]);
    expect((await get('88.118.8/HEX', '?index=5')).body.values[0].data).toEqual({ format: 'base64', value: 'yv66vg==' });
  });

  it('refuses a malformed handle with 400 responseCode 102', async () => {
    for (const handle of ['88.118.8', '88.118.8/', '88..8/x', '88.118.8/a%01b', `88.118.8/${'x'.repeat(250)}`]) {
      const r = await put(handle, [url('x')]);
      expect(r.status, handle).toBe(400);
      expect(r.body.responseCode, handle).toBe(102);
    }
  });

  it('checks the caller before the body: anonymous writes get 401 whatever they send', async () => {
    const r = await call(node.url, 'PUT', '/api/handles/88.118.8/ANON', { body: { values: [] } });
    expect(r.status).toBe(401);
    expect(r.body.responseCode).toBe(402);
    const junk = await call(node.url, 'PUT', '/api/handles/88.118.8/ANON', { raw: '{not json', contentType: 'application/json' });
    expect(junk.status).toBe(401);
    const other = await call(node.url, 'PUT', '/api/handles/88.118.9/ANON', { key, body: { values: [] } });
    expect(other.status).toBe(403);
  });

  it('refuses a body naming another handle than the URL', async () => {
    const r = await call(node.url, 'PUT', '/api/handles/88.118.8/BODY', { key, body: { handle: '88.118.8/OTHER', values: [url('x')] } });
    expect(r.status).toBe(400);
    expect(r.body.code).toBe('INVALID_HANDLE');
  });

  it('stores prefixes upper-cased and suffixes exactly, including percent-encoded and UTF-8 ones', async () => {
    const suffix = 'Lot 7/批次#1?';
    const r = await call(node.url, 'PUT', `/api/handles/88.118.8/${encodeURIComponent(suffix)}`, { key, body: { values: [url('x')] } });
    expect(r.status).toBe(200);
    expect(r.body.handle).toBe(`88.118.8/${suffix}`);
    expect(await stored('88.118.8', suffix)).toBeDefined();
    expect(await stored('88.118.8', suffix.toLowerCase())).toBeUndefined();
  });
});

describe('DELETE /api/handles/{handle}', () => {
  it('deletes, then answers 404 with responseCode 100', async () => {
    await put('88.118.8/DEL', [url('x')]);
    const r = await call(node.url, 'DELETE', '/api/handles/88.118.8/DEL', { key });
    expect(r.status).toBe(200);
    expect(r.body).toEqual({ responseCode: 1, handle: '88.118.8/DEL' });
    expect((await get('88.118.8/DEL')).status).toBe(404);
    const again = await call(node.url, 'DELETE', '/api/handles/88.118.8/DEL', { key });
    expect(again.status).toBe(404);
    expect(again.body.responseCode).toBe(100);
  });

  it('honours If-Match', async () => {
    await put('88.118.8/DEL-COND', [url('x')]);
    const stale = await call(node.url, 'DELETE', '/api/handles/88.118.8/DEL-COND', { key, headers: { 'if-match': '"2"' } });
    expect(stale.status).toBe(412);
    expect((await get('88.118.8/DEL-COND')).status).toBe(200);
    const ok = await call(node.url, 'DELETE', '/api/handles/88.118.8/DEL-COND', { key, headers: { 'if-match': '"1"' } });
    expect(ok.status).toBe(200);
  });
});

describe('GET /api/handles?prefix= (listing)', () => {
  it('lists a prefix page by page for its owner', async () => {
    for (const s of ['L-1', 'L-2', 'L-3']) await put(`88.118.8/${s}`, [url(s)]);
    const page0 = await call(node.url, 'GET', '/api/handles?prefix=88.118.8&pageSize=2', { key });
    expect(page0.status).toBe(200);
    expect(page0.body.totalCount).toBeGreaterThanOrEqual(3);
    expect(page0.body.handles).toHaveLength(2);
    const all = await call(node.url, 'GET', '/api/handles?prefix=88.118.8&pageSize=1000', { key });
    expect(all.body.handles).toEqual(expect.arrayContaining(['88.118.8/L-1', '88.118.8/L-2', '88.118.8/L-3']));
    expect(all.body.handles).toHaveLength(all.body.totalCount);
  });

  it('refuses out-of-range paging with 400, not 500', async () => {
    const r = await call(node.url, 'GET', '/api/handles?prefix=88.118.8&page=99999999999999999999', { key });
    expect(r.status).toBe(400);
  });
});
