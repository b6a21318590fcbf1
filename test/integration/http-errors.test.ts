/** Malformed requests get clear 4xx answers in the right body style, never a 500. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../helpers/databases.js';
import { call, onboard, url } from '../helpers/http.js';
import { startTestNode, type TestNode } from '../helpers/node.js';
import { makeUscc } from '../helpers/uscc.js';

let db: TestDatabase;
let node: TestNode;
let key: string;

beforeAll(async () => {
  db = await createTestDatabase();
  node = await startTestNode({ databaseUrl: db.url, redis: false });
  ({ key } = await onboard(node.url, node.adminKey, makeUscc(301), '88.118.8'));
});

afterAll(async () => {
  await node?.close();
  await db?.drop();
});

describe('HTTP errors', () => {
  it('answers malformed JSON with 400 INVALID_JSON', async () => {
    const handle = await call(node.url, 'PUT', '/api/handles/88.118.8/J', { key, raw: '{"values": [', contentType: 'application/json' });
    expect(handle.status).toBe(400);
    expect(handle.body).toMatchObject({ responseCode: 2, handle: '88.118.8/J', code: 'INVALID_JSON' });
    const other = await call(node.url, 'POST', '/api/admin/enterprises', { key: node.adminKey, raw: '{nope', contentType: 'application/json' });
    expect(other.status).toBe(400);
    expect(other.body.error).toMatchObject({ code: 'INVALID_JSON' });
    expect(other.body.error.requestId).toBe(other.headers.get('x-request-id'));
  });

  it('parses batch resolution bodies with its own JSON parser: same errors, and a __proto__ key is an unknown property there and poison elsewhere', async () => {
    for (const raw of ['{"handles": [', '']) {
      const r = await call(node.url, 'POST', '/api/resolve', { raw, contentType: 'application/json' });
      expect(r.status, raw).toBe(400);
      expect(r.body.error, raw).toMatchObject({ code: 'INVALID_JSON' });
    }
    const poisoned = await call(node.url, 'POST', '/api/resolve', { raw: '{"handles":["88.118.8/X"],"__proto__":{"polluted":1}}', contentType: 'application/json' });
    expect(poisoned.status).toBe(400);
    expect(poisoned.body.error).toMatchObject({ code: 'VALIDATION_ERROR' });
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    const ok = await call(node.url, 'POST', '/api/resolve', { raw: '{"handles":["88.118.8/NONE"]}', contentType: 'application/json' });
    expect(ok.status).toBe(200);
    expect(ok.body.results[0]).toMatchObject({ responseCode: 100 });
    // Every other route keeps fastify's default: a body with __proto__ is refused as it is parsed.
    const put = await call(node.url, 'PUT', '/api/handles/88.118.8/P', { key, raw: `{"values":[${JSON.stringify(url('p'))}],"__proto__":{"polluted":1}}`, contentType: 'application/json' });
    expect(put.status).toBe(400);
    expect(put.body).toMatchObject({ code: 'INVALID_JSON' });
  });

  it('answers a wrong content type with 415', async () => {
    for (const type of ['text/plain', 'application/x-www-form-urlencoded', 'application/xml']) {
      const r = await call(node.url, 'PUT', '/api/handles/88.118.8/T', { key, raw: 'values=1', contentType: type });
      expect(r.status, type).toBe(415);
      expect(r.body.code, type).toBe('UNSUPPORTED_MEDIA_TYPE');
    }
  });

  it('answers an oversized body with 413, without reading it all', async () => {
    const big = JSON.stringify({ values: [url('x'.repeat(300 * 1024))] });
    const r = await call(node.url, 'PUT', '/api/handles/88.118.8/BIG', { key, raw: big, contentType: 'application/json' });
    expect(r.status).toBe(413);
    expect(r.body.code).toBe('BODY_TOO_LARGE');
  });

  it('answers unknown routes with 404 in the style of their area', async () => {
    // GET /{prefix}/{suffix} is the proxy view of a handle; a path that is no handle is no route.
    const generic = await call(node.url, 'GET', '/no-such-route');
    expect(generic.status).toBe(404);
    expect(generic.body.error.code).toBe('ROUTE_NOT_FOUND');
    const other = await call(node.url, 'POST', '/no/such/route');
    expect(other.status).toBe(404);
    expect(other.body.error.code).toBe('ROUTE_NOT_FOUND');
    const handleStyle = await call(node.url, 'PATCH', '/api/handles/88.118.8/X');
    expect(handleStyle.status).toBe(404);
    expect(handleStyle.body).toMatchObject({ responseCode: 2, code: 'ROUTE_NOT_FOUND' });
  });

  it('refuses unknown fields instead of ignoring them', async () => {
    const r = await call(node.url, 'POST', '/api/admin/enterprises', { key: node.adminKey, body: { name: 'x', uscc: makeUscc(302), color: 'red' } });
    expect(r.status).toBe(400);
    expect(r.body.error.code).toBe('VALIDATION_ERROR');
    const h = await call(node.url, 'PUT', '/api/handles/88.118.8/U', { key, body: { values: [url('x')], extra: true } });
    expect(h.status).toBe(400);
    expect(h.body.responseCode).toBe(202);
  });

  it('answers bad percent-encoding with 400', async () => {
    const r = await call(node.url, 'GET', '/api/handles/88.118.8/%E0%A4%A');
    expect(r.status).toBe(400);
  });

  it('keeps a sane caller request id and makes one otherwise', async () => {
    const given = await call(node.url, 'GET', '/healthz', { headers: { 'x-request-id': 'trace-123.abc' } });
    expect(given.headers.get('x-request-id')).toBe('trace-123.abc');
    const replaced = await call(node.url, 'GET', '/healthz', { headers: { 'x-request-id': 'bad id <script>' } });
    expect(replaced.headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/);
  });

  it('answers health and readiness', async () => {
    expect((await call(node.url, 'GET', '/healthz')).body).toEqual({ status: 'ok', nodeId: node.config.NODE_ID });
    expect((await call(node.url, 'GET', '/readyz')).body).toMatchObject({ status: 'ready', postgres: 'up', cache: 'in-process' });
  });
});
