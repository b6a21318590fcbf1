/** The resolution fast path on real Postgres and Redis: tiers, batches, protobuf, HTTP caching. */
import net from 'node:net';
import { Redis } from 'ioredis';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InvalidHandleError, parseHandle, type Handle } from '../../src/handle/handle.js';
import { AppError } from '../../src/infra/errors.js';
import type { HandleRecord } from '../../src/handle/values.js';
import { createLogger } from '../../src/infra/logger.js';
import { findRecord, findRecords } from '../../src/registry/repository.js';
import { decodeBatchResponse, decodeResolution, PROTOBUF_TYPE, protobufTypes } from '../../src/resolver/protobuf.js';
import { RedisCache } from '../../src/resolver/redis-cache.js';
import { ResolverCache } from '../../src/resolver/resolver-cache.js';
import { ResolverService, type RecordSource, type ResolvedItem } from '../../src/resolver/service.js';
import type { CacheEntry } from '../../src/resolver/cache-entry.js';
import { createTestDatabase, type TestDatabase } from '../helpers/databases.js';
import { TEST_REDIS_URL } from '../helpers/env.js';
import { call, onboard, url } from '../helpers/http.js';
import { clearRedisPrefix, newRedisPrefix, startTestNode, type TestNode } from '../helpers/node.js';
import { makeUscc } from '../helpers/uscc.js';
import { ResolutionCounts } from '../../src/stats/resolution-counter.js';

let db: TestDatabase;
let sql: pg.Pool;
let redis: Redis;
let first: TestNode;
let second: TestNode;
let key: string;
const redisPrefix = newRedisPrefix();

beforeAll(async () => {
  db = await createTestDatabase();
  sql = new pg.Pool({ connectionString: db.url, max: 4 });
  redis = new Redis(TEST_REDIS_URL);
  // Two processes' worth of nodes sharing one database and one Redis, each with its own L1.
  first = await startTestNode({ databaseUrl: db.url, redis: true, redisKeyPrefix: redisPrefix, env: { NEGATIVE_CACHE_TTL: '60' } });
  second = await startTestNode({ databaseUrl: db.url, redis: true, redisKeyPrefix: redisPrefix, env: { NEGATIVE_CACHE_TTL: '60' } });
  ({ key } = await onboard(first.url, first.adminKey, makeUscc(601), '88.118.6'));
});

afterAll(async () => {
  await Promise.all([first?.close(), second?.close()]);
  await clearRedisPrefix(redisPrefix);
  redis?.disconnect();
  await sql?.end();
  await db?.drop();
});

const put = (handle: string, values: unknown[], base = first.url) => call(base, 'PUT', `/api/handles/${handle}`, { key, body: { values } });
const get = (handle: string, query = '', base = first.url, headers: Record<string, string> = {}) => call(base, 'GET', `/api/handles/${handle}${query}`, { headers });
const valueOf = async (handle: string, base = first.url) => (await get(handle, '', base)).body.values?.[0]?.data.value;
/** Changes a record behind the node's back, so a stale cache shows. */
const sneak = (suffix: string, value: string) =>
  sql.query(
    `UPDATE identifiers SET handle_values = jsonb_set(handle_values::jsonb, '{0,data,value}', to_jsonb($2::text))::json WHERE prefix = '88.118.6' AND suffix = $1`,
    [suffix, value],
  );
const sneakInsert = (suffix: string, value: string) =>
  sql.query(
    `INSERT INTO identifiers (prefix, suffix, handle_values) VALUES ('88.118.6', $1, $2)`,
    [suffix, JSON.stringify([{ index: 1, type: 'URL', data: { format: 'string', value }, ttl: 86400, timestamp: '2026-01-01T00:00:00.000Z' }])],
  );

describe('cache tiers across processes', () => {
  it('serves a hot record from L1: a change behind the caches stays unseen until a write invalidates it', async () => {
    await put('88.118.6/HOT', [url('v1')]);
    expect(await valueOf('88.118.6/HOT')).toBe('v1');
    await sneak('HOT', 'behind');
    await redis.del(`${redisPrefix}rec:88.118.6/HOT`); // not even Redis holds it now: only L1 can answer
    expect(await valueOf('88.118.6/HOT')).toBe('v1');
    expect((await get('88.118.6/HOT', '?auth=true')).body.values[0].data.value).toBe('behind');
  });

  it('an update on one process reaches the other process L1 (pub/sub), within a bounded wait', async () => {
    await put('88.118.6/X', [url('v1')]);
    expect(await valueOf('88.118.6/X', first.url)).toBe('v1');
    expect(await valueOf('88.118.6/X', second.url)).toBe('v1'); // now in second's L1
    await put('88.118.6/X', [url('v2')], first.url);
    expect(await valueOf('88.118.6/X', first.url)).toBe('v2'); // the writer sees it at once
    await expect.poll(() => valueOf('88.118.6/X', second.url), { timeout: 5000, interval: 20 }).toBe('v2');
    await call(second.url, 'DELETE', '/api/handles/88.118.6/X', { key });
    await expect.poll(async () => (await get('88.118.6/X', '', first.url)).status, { timeout: 5000, interval: 20 }).toBe(404);
  });

  it('never caches a record with a TTL 0 value, in L1 or Redis', async () => {
    await put('88.118.6/ZERO', [url('a'), { ...url('b', 2), ttl: 0 }]);
    const first404 = await get('88.118.6/ZERO');
    expect(first404.headers.get('cache-control')).toBe('no-cache');
    await sneak('ZERO', 'fresh');
    expect(await valueOf('88.118.6/ZERO')).toBe('fresh');
    expect(await redis.exists(`${redisPrefix}rec:88.118.6/ZERO`)).toBe(0);
  });

  it('caches not-found, and registering the handle clears it on every process', async () => {
    expect((await get('88.118.6/NEG', '', first.url)).status).toBe(404);
    expect((await get('88.118.6/NEG', '', second.url)).status).toBe(404);
    await sneakInsert('NEG', 'behind'); // written behind the node: the cached 404 still answers
    expect((await get('88.118.6/NEG', '', first.url)).status).toBe(404);
    expect((await get('88.118.6/NEG', '?auth=true', first.url)).status).toBe(200);
    await sql.query(`DELETE FROM identifiers WHERE prefix = '88.118.6' AND suffix = 'NEG'`);
    expect((await put('88.118.6/NEG', [url('registered')], first.url)).status).toBe(200);
    expect(await valueOf('88.118.6/NEG', first.url)).toBe('registered');
    await expect.poll(() => valueOf('88.118.6/NEG', second.url), { timeout: 5000, interval: 20 }).toBe('registered');
  });

  it('serves filtered requests from the cached record, not from Postgres', async () => {
    await put('88.118.6/F', [url('https://a.example'), { index: 2, type: 'EMAIL', data: { format: 'string', value: 'qa@example.com' } }]);
    await get('88.118.6/F');
    await sneak('F', 'changed');
    const filtered = await get('88.118.6/F', '?type=EMAIL&index=1');
    expect(filtered.body.values.map((v: { data: { value: string } }) => v.data.value)).toEqual(['https://a.example', 'qa@example.com']);
  });

  it('shows owners their private values and everyone else only the public ones', async () => {
    await put('88.118.6/PRIV', [url('https://public.example'), { index: 2, type: 'SECRET', data: { format: 'string', value: 's3cret' }, permissions: '1100' }]);
    const anonymous = await get('88.118.6/PRIV');
    expect(anonymous.body.values.map((v: { index: number }) => v.index)).toEqual([1, 100]);
    expect(anonymous.headers.get('cache-control')).toMatch(/^public, max-age=\d+$/);
    const owner = await call(first.url, 'GET', '/api/handles/88.118.6/PRIV', { key });
    expect(owner.body.values.map((v: { index: number }) => v.index)).toEqual([1, 2, 100]);
    expect(owner.headers.get('cache-control')).toMatch(/^private, max-age=\d+$/);
  });

  it('tags the owner view with private values apart from the public one, and takes its tag in If-Match', async () => {
    await put('88.118.6/PRIV-TAG', [url('https://public.example'), { index: 2, type: 'SECRET', data: { format: 'string', value: 's3cret' }, permissions: '1100' }]);
    const path = '/api/handles/88.118.6/PRIV-TAG';
    const publicTag = (await get('88.118.6/PRIV-TAG')).headers.get('etag');
    expect(publicTag).toBe('"1"');
    const owner = await call(first.url, 'GET', path, { key });
    expect(owner.headers.get('etag')).toBe('"1-o"');
    // A cache revalidating its public copy for the owner gets the owner's answer, not a 304.
    const revalidated = await call(first.url, 'GET', path, { key, headers: { 'if-none-match': publicTag! } });
    expect(revalidated.status).toBe(200);
    expect(revalidated.body.values.map((v: { index: number }) => v.index)).toEqual([1, 2, 100]);
    expect((await call(first.url, 'GET', path, { key, headers: { 'if-none-match': '"1-o"' } })).status).toBe(304);
    // Read past the caches, the owner's answer is still private.
    expect((await call(first.url, 'GET', `${path}?auth=true`, { key })).headers.get('cache-control')).toBe('private, no-cache');
    expect((await fetch(`${first.url}${path}?auth=true`)).headers.get('cache-control')).toBe('no-cache');
    // Anonymous callers never match the owner's tag.
    expect((await fetch(`${first.url}${path}`, { headers: { 'if-none-match': '"1-o"' } })).status).toBe(200);
    // The owner's tag names version 1 for a write; a stale one is refused.
    const replaced = await call(first.url, 'PUT', path, { key, headers: { 'if-match': '"1-o"' }, body: { values: [url('https://v2.example')] } });
    expect(replaced.status).toBe(200);
    expect((await call(first.url, 'PUT', path, { key, headers: { 'if-match': '"1-o"' }, body: { values: [url('https://v3.example')] } })).status).toBe(412);
  });
});

describe('single flight', () => {
  it('issues one Postgres query for 100 concurrent misses of one handle, and one for a batch of misses', async () => {
    await put('88.118.6/SF', [url('once')]);
    await put('88.118.6/SF-2', [url('two')]);
    const pool = new pg.Pool({ connectionString: db.url, max: 4 });
    let queries = 0;
    // The registry's real queries against the real database, counted.
    const source: RecordSource = {
      find: (prefix, suffix) => {
        queries += 1;
        return findRecord(pool, prefix, suffix);
      },
      findMany: (handles: readonly Handle[]): Promise<Map<string, HandleRecord>> => {
        queries += 1;
        return findRecords(pool, handles);
      },
    };
    const prefix = newRedisPrefix();
    const client = new Redis(TEST_REDIS_URL, { enableAutoPipelining: true });
    const cache = new ResolverCache(1 << 20, new RedisCache(client, prefix, createLogger('silent')));
    const resolver = new ResolverService(source, cache, { maxTtlSeconds: 3600, negativeTtlSeconds: 5 });
    try {
      const answers = await Promise.all(Array.from({ length: 100 }, () => resolver.lookup(parseHandle('88.118.6/SF'))));
      expect(queries).toBe(1);
      expect(new Set(answers.map((a) => a.json.toString())).size).toBe(1);
      expect(answers[0]!.found).toBe(true);
      // L1 holds it now: no more queries.
      await resolver.lookup(parseHandle('88.118.6/SF'));
      expect(queries).toBe(1);
      // Strings as callers send them: one is not a handle.
      const batch = ['88.118.6/SF-2', '88.118.6/NONE-1', '88.118.6/NONE-2', '88.118.6/SF', 'not a handle'];
      const [a, b] = await Promise.all([resolver.resolveMany(batch), resolver.resolveMany(batch)]);
      expect(queries).toBe(2);
      const entries = (items: ResolvedItem[]) => items.filter((e): e is CacheEntry => !(e instanceof InvalidHandleError || e instanceof AppError));
      expect(a.map((e) => (e instanceof InvalidHandleError ? 'invalid' : e instanceof AppError ? e.code : e.found))).toEqual([true, false, false, true, 'invalid']);
      expect(entries(b).map((e) => e.json.toString())).toEqual(entries(a).map((e) => e.json.toString()));

      // L1 hits of a batch are counted per prefix as one resolution each, whatever the order.
      const mixed = ['88.118.6/SF', '88.118.7/NONE-A', '88.118.6/SF-2', '88.118.6/NONE-1', '88.118.7/NONE-A', '88.118.6/SF'];
      await resolver.resolveMany(mixed);
      const counts = new ResolutionCounts('Asia/Shanghai');
      const counted = new ResolverService(source, cache, { maxTtlSeconds: 3600, negativeTtlSeconds: 5 }, counts);
      const l1Before = Array.from(counted.tiers.slice(0, 2));
      expect(counted.resolveMany(mixed)).not.toBeInstanceOf(Promise);
      counts.stop();
      const byPrefix = Object.fromEntries(counts.drain().map((row) => [row.prefix, row.counts]));
      expect(byPrefix).toEqual({ '88.118.6': [3, 1, 4], '88.118.7': [0, 2, 2] });
      expect(Array.from(counted.tiers.slice(0, 2))).toEqual([l1Before[0]! + 3, l1Before[1]! + 3]);
    } finally {
      await cache.close();
      client.disconnect();
      await clearRedisPrefix(prefix);
      await pool.end();
    }
  });
});

describe('POST /api/resolve', () => {
  it('answers every handle in order with its own responseCode', async () => {
    await put('88.118.6/B1', [url('one')]);
    await put('88.118.6/B2', [url('two')]);
    const r = await call(first.url, 'POST', '/api/resolve', { body: { handles: ['88.118.6/B2', 'not a handle', '88.118.6/NOPE', '88.118.6/B1', '88.118.6/B2'] } });
    expect(r.status).toBe(200);
    expect(r.body.results.map((x: { responseCode: number }) => x.responseCode)).toEqual([1, 102, 100, 1, 1]);
    expect(r.body.results.map((x: { handle: string }) => x.handle)).toEqual(['88.118.6/B2', 'not a handle', '88.118.6/NOPE', '88.118.6/B1', '88.118.6/B2']);
    expect(r.body.results[0].values[0].data.value).toBe('two');
    expect(r.body.results[1]).toMatchObject({ code: 'INVALID_HANDLE' });
  });

  it('refuses more than 1000 handles, an empty list and unknown fields', async () => {
    const many = Array.from({ length: 1001 }, (_, i) => `88.118.6/M${i}`);
    expect((await call(first.url, 'POST', '/api/resolve', { body: { handles: many } })).status).toBe(400);
    expect((await call(first.url, 'POST', '/api/resolve', { body: { handles: [] } })).status).toBe(400);
    expect((await call(first.url, 'POST', '/api/resolve', { body: { handles: ['88.118.6/B1'], extra: 1 } })).status).toBe(400);
    const thousand = await call(first.url, 'POST', '/api/resolve', { body: { handles: many.slice(0, 1000) } });
    expect(thousand.status).toBe(200);
    expect(thousand.body.results).toHaveLength(1000);
  });

  it('keeps a large answer intact while its client is slow to read and other answers are built', async () => {
    // 1000 results of about 6 KB (6 MB): more than the sockets take in, so the slow answer's write stays
    // pending in the node while the next answers are built (in buffers that are reused).
    const suffixes = Array.from({ length: 20 }, (_, i) => `BIG${i}`);
    await Promise.all(suffixes.map((s) => put(`88.118.6/${s}`, [url(`https://example.com/${s}/${'x'.repeat(6000)}`)])));
    const ask = (shift: number) => Array.from({ length: 1000 }, (_, i) => `88.118.6/${suffixes[(i + shift) % suffixes.length]}`);
    const summary = (results: Array<{ handle: string; values: Array<{ data: { value: string } }> }>) => results.map((x) => `${x.handle}=${x.values[0]!.data.value.slice(0, 30)}`);
    const expected = (handles: string[]) => handles.map((h) => `${h}=https://example.com/${h.slice('88.118.6/'.length)}/xxxxx`.slice(0, h.length + 31));

    const slowHandles = ask(0);
    const { port } = new URL(first.url);
    const slow = net.connect(Number(port), '127.0.0.1');
    const body = JSON.stringify({ handles: slowHandles });
    slow.write(`POST /api/resolve HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`);
    // The first bytes show the node has built the answer; then stop reading.
    const chunks: Buffer[] = [await new Promise<Buffer>((resolve) => slow.once('data', resolve))];
    slow.pause();
    for (let shift = 1; shift <= 6; shift += 1) {
      const handles = ask(shift);
      const r = await call(first.url, 'POST', '/api/resolve', { body: { handles } });
      expect(summary(r.body.results)).toEqual(expected(handles));
    }
    slow.on('data', (chunk: Buffer) => chunks.push(chunk));
    slow.resume();
    await new Promise((resolve) => slow.once('end', resolve));
    const raw = Buffer.concat(chunks).toString('utf8');
    expect(raw.startsWith('HTTP/1.1 200')).toBe(true);
    expect(summary(JSON.parse(raw.slice(raw.indexOf('\r\n\r\n') + 4)).results)).toEqual(expected(slowHandles));
  });
});

describe('protobuf', () => {
  const fetchBytes = async (path: string, init: RequestInit = {}) => {
    const r = await fetch(`${first.url}${path}`, { ...init, headers: { accept: PROTOBUF_TYPE, ...(init.headers as Record<string, string>) } });
    return { status: r.status, type: r.headers.get('content-type'), etag: r.headers.get('etag'), bytes: new Uint8Array(await r.arrayBuffer()) };
  };

  it('answers the same record as JSON does, single and batch, request body in either encoding', async () => {
    await put('88.118.6/PB', [url('https://example.com/部件'), { index: 2, type: 'EMAIL', data: { format: 'string', value: '质量@example.com' } }]);
    const json = (await get('88.118.6/PB')).body;
    const single = await fetchBytes('/api/handles/88.118.6/PB');
    expect(single.status).toBe(200);
    expect(single.type).toBe(PROTOBUF_TYPE);
    expect(single.etag).not.toBe((await get('88.118.6/PB')).headers.get('etag'));
    expect(decodeResolution(single.bytes)).toEqual(json);

    const handles = ['88.118.6/PB', '88.118.6/NOPE-PB', 'bad'];
    const jsonBatch = (await call(first.url, 'POST', '/api/resolve', { body: { handles } })).body.results;
    const viaJson = await fetchBytes('/api/resolve', { method: 'POST', body: JSON.stringify({ handles }), headers: { 'content-type': 'application/json' } });
    expect(decodeBatchResponse(viaJson.bytes)).toEqual(jsonBatch);
    const request = protobufTypes.ResolveBatchRequest.encode({ handles }).finish();
    const viaProto = await fetchBytes('/api/resolve', { method: 'POST', body: request, headers: { 'content-type': PROTOBUF_TYPE } });
    expect(viaProto.status).toBe(200);
    expect(decodeBatchResponse(viaProto.bytes)).toEqual(jsonBatch);
  });

  it('answers a not-found handle in protobuf too, and refuses a malformed protobuf body', async () => {
    const missing = await fetchBytes('/api/handles/88.118.6/NOPE-PB2');
    expect(missing.status).toBe(404);
    expect(decodeResolution(missing.bytes)).toMatchObject({ responseCode: 100, handle: '88.118.6/NOPE-PB2' });
    const bad = await call(first.url, 'POST', '/api/resolve', { raw: Buffer.from([0x0a, 0xff]), contentType: PROTOBUF_TYPE });
    expect(bad.status).toBe(400);
    expect(bad.body.error.code).toBe('INVALID_PROTOBUF');
  });

  it('negotiates Accept: q-values (q=0 is "not this"), order and case', async () => {
    await put('88.118.6/NEG-PB', [url('https://example.com/neg')]);
    const typeFor = async (accept: string) => (await fetchBytes('/api/handles/88.118.6/NEG-PB', { headers: { accept } })).type;
    expect(await typeFor('APPLICATION/X-PROTOBUF')).toBe(PROTOBUF_TYPE);
    expect(await typeFor('application/x-protobuf, application/json')).toBe(PROTOBUF_TYPE);
    expect(await typeFor('application/x-protobuf;q=0, application/json')).toMatch(/^application\/json/);
    expect(await typeFor('application/json, application/x-protobuf;q=0.5')).toMatch(/^application\/json/);
    expect(await typeFor('*/*')).toMatch(/^application\/json/);
  });
});

describe('HTTP caching', () => {
  it('gives Cache-Control from the record TTL and an ETag with the version; If-None-Match answers 304', async () => {
    await put('88.118.6/HC', [{ ...url('a'), ttl: 300 }, { index: 2, type: 'EMAIL', data: { format: 'string', value: 'e' }, ttl: 900 }]);
    const r = await get('88.118.6/HC');
    const maxAge = Number(/max-age=(\d+)/.exec(r.headers.get('cache-control') ?? '')?.[1]);
    expect(maxAge).toBeGreaterThan(250);
    expect(maxAge).toBeLessThanOrEqual(300);
    expect(r.headers.get('etag')).toBe('"1"');
    expect(r.headers.get('vary')).toContain('Accept');
    const again = await get('88.118.6/HC', '', first.url, { 'if-none-match': '"1"' });
    expect(again.status).toBe(304);
    expect(again.text).toBe('');
    await put('88.118.6/HC', [url('b')]);
    const changed = await get('88.118.6/HC', '', first.url, { 'if-none-match': '"1"' });
    expect(changed.status).toBe(200);
    expect(changed.headers.get('etag')).toBe('"2"');
    expect((await get('88.118.6/HC', '', first.url, { 'if-none-match': 'W/"2", "9"' })).status).toBe(304);
  });
});
