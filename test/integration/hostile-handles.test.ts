/**
 * Hostile handles are normalised or refused the same way on every route: GET, PUT and DELETE
 * /api/handles/*, POST /api/resolve (per item), the proxy view, and handle references in values.
 */
import { request } from 'node:http';
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
  ({ key } = await onboard(node.url, node.adminKey, makeUscc(891), '88.118.5'));
});

afterAll(async () => {
  await node?.close();
  await db?.drop();
});

const body = { values: [url('https://h.example')] };

/** Sends the path exactly as written: fetch would resolve "." and ".." segments (also %2e) itself. */
function exact(method: string, path: string, options: { key?: string; body?: unknown } = {}): Promise<{ status: number; body: any; text: string }> {
  const payload = options.body === undefined ? undefined : JSON.stringify(options.body);
  return new Promise((resolve, reject) => {
    const { hostname, port } = new URL(node.url);
    // host/port/path options, not a URL string: a URL would be normalised on the way.
    const req = request({
      hostname,
      port,
      path,
      method,
      headers: { ...(options.key ? { authorization: `Bearer ${options.key}` } : {}), ...(payload ? { 'content-type': 'application/json' } : {}) },
    }, (res) => {
      let text = '';
      res.on('data', (c) => (text += c));
      res.on('end', () => {
        let parsed: unknown;
        try { parsed = JSON.parse(text); } catch { parsed = undefined; }
        resolve({ status: res.statusCode ?? 0, body: parsed, text });
      });
    });
    req.on('error', reject);
    req.end(payload);
  });
}

/** [as written in the URL, as the decoded handle for POST /api/resolve] */
const refused: Array<[string, string]> = [
  ['88.118.5/A%00B', '88.118.5/A\u0000B'],
  ['88.118.5/A%0AB', '88.118.5/A\nB'],
  ['88.118.5/A%C2%85B', '88.118.5/A\u0085B'],
  ['88.118.5/..', '88.118.5/..'],
  ['88.118.5/%2e%2e/x', '88.118.5/../x'],
  ['88.118.5/a/./b', '88.118.5/a/./b'],
  ['88.118.5/a/%2E%2E', '88.118.5/a/..'],
  ['88.118.5/', '88.118.5/'],
  ['88..118.5/X', '88..118.5/X'],
  [`88.118.5/${'x'.repeat(250)}`, `88.118.5/${'x'.repeat(250)}`],
];

describe('refused the same way everywhere', () => {
  it.each(refused)('%s', async (path, decoded) => {
    const outcomes = [
      (await exact('GET', `/api/handles/${path}`)),
      (await exact('PUT', `/api/handles/${path}`, { key, body })),
      (await exact('DELETE', `/api/handles/${path}`, { key })),
    ];
    for (const r of outcomes) expect({ status: r.status, code: r.body?.responseCode }, r.text).toEqual({ status: 400, code: 102 });
    const batch = await call(node.url, 'POST', '/api/resolve', { body: { handles: [decoded] } });
    expect(batch.body.results[0].responseCode).toBe(102);
    const proxy = await exact('GET', `/${path}`);
    expect(proxy.status).toBeGreaterThanOrEqual(400);
    expect(proxy.status).toBeLessThan(500);
    const reference = await call(node.url, 'PUT', '/api/handles/88.118.5/REF', { key, body: { values: [{ index: 1, type: 'HS_VLIST', data: { format: 'vlist', value: [{ handle: decoded, index: 1 }] } }] } });
    expect(reference.body.responseCode).toBe(202);
  });

  it('answers 400 BAD_URL for percent-encoding that is not UTF-8 (overlong forms included), on every route', async () => {
    for (const path of ['88.118.5/%C0%AE%C0%AE', '88.118.5/%FF', '88.118.5/%E0%80%AF', '88.118.5/%']) {
      for (const [method, key_] of [['GET', undefined], ['PUT', key], ['DELETE', key]] as const) {
        const r = await exact(method, `/api/handles/${path}`, { ...(key_ ? { key: key_ } : {}), ...(method === 'PUT' ? { body } : {}) });
        expect({ path, method, status: r.status, code: r.body?.code }).toEqual({ path, method, status: 400, code: 'BAD_URL' });
      }
    }
  });
});

describe('normalised the same way everywhere', () => {
  it('mixed-case prefixes name one record; an encoded slash is a slash of the suffix', async () => {
    expect((await call(node.url, 'PUT', '/api/handles/88.118.5/Mixed%2FCase', { key, body })).status).toBe(200);
    for (const p of ['88.118.5/Mixed/Case', '88.118.5/Mixed%2FCase']) {
      const r = await call(node.url, 'GET', `/api/handles/${p}`);
      expect(r.body.handle).toBe('88.118.5/Mixed/Case');
    }
    const batch = await call(node.url, 'POST', '/api/resolve', { body: { handles: ['88.118.5/Mixed/Case', '88.118.5/mixed/Case'] } });
    expect(batch.body.results.map((x: { responseCode: number }) => x.responseCode)).toEqual([1, 100]); // suffixes are case-sensitive
    expect((await call(node.url, 'DELETE', '/api/handles/88.118.5/Mixed/Case', { key })).body.handle).toBe('88.118.5/Mixed/Case');
  });

  it('upper-cases a lower-case enterprise prefix on every route', async () => {
    await onboard(node.url, node.adminKey, makeUscc(892), '88.118.AB');
    const r = await call(node.url, 'PUT', '/api/handles/88.118.ab/K', { key: node.adminKey, body });
    expect(r.body.handle).toBe('88.118.AB/K');
    expect((await call(node.url, 'GET', '/api/handles/88.118.Ab/K')).body.handle).toBe('88.118.AB/K');
    expect((await call(node.url, 'POST', '/api/resolve', { body: { handles: ['88.118.aB/K'] } })).body.results[0].handle).toBe('88.118.AB/K');
    expect((await call(node.url, 'GET', '/api/handles?prefix=88.118.ab', { key: node.adminKey })).body.handles).toEqual(['88.118.AB/K']);
  });
});
