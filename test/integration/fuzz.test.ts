/**
 * HTTP fuzz: thousands of random and mutated requests (raw bytes on a socket, so nothing between
 * the test and the node tidies them up) against a running node. No answer is a 5xx, the node stays
 * up, and enterprise A's records are unchanged by everything B, anonymous and garbage keys send.
 */
import { connect } from 'node:net';
import fc from 'fast-check';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../helpers/databases.js';
import { call, onboard, url } from '../helpers/http.js';
import { startTestNode, type TestNode } from '../helpers/node.js';
import { makeUscc } from '../helpers/uscc.js';

let db: TestDatabase;
let node: TestNode;
let sql: pg.Pool;
let a: { enterpriseId: string; key: string };
let b: { enterpriseId: string; key: string };

beforeAll(async () => {
  db = await createTestDatabase();
  sql = new pg.Pool({ connectionString: db.url, max: 2 });
  node = await startTestNode({ databaseUrl: db.url, redis: false });
  a = await onboard(node.url, node.adminKey, makeUscc(801), '88.118.1');
  b = await onboard(node.url, node.adminKey, makeUscc(802), '88.118.2');
  for (const s of ['P-1', 'P-2', 'ü/ö', '..x']) {
    const r = await call(node.url, 'PUT', `/api/handles/88.118.1/${encodeURIComponent(s)}`, {
      key: a.key,
      body: { values: [url(`https://a.example/${s}`), { index: 2, type: 'SECRET', data: { format: 'string', value: 'a-only' }, permissions: '1100' }] },
    });
    if (r.status !== 200) throw new Error(`seed ${s}: ${r.status} ${r.text}`);
  }
});

afterAll(async () => {
  await sql?.end();
  await node?.close();
  await db?.drop();
});

const snapshot = async () =>
  (await sql.query("SELECT prefix, suffix, version, handle_values::text AS v FROM identifiers WHERE prefix = '88.118.1' ORDER BY suffix")).rows;
const tenancySnapshot = async () => (await sql.query(
  `SELECT (SELECT count(*) FROM enterprises) AS e, (SELECT count(*) FROM prefixes) AS p, (SELECT string_agg(prefix || state, ',' ORDER BY prefix) FROM prefixes) AS ps,
          (SELECT count(*) FROM api_keys WHERE revoked_at IS NULL) AS k`,
)).rows[0];

/** Sends raw bytes and returns the status code of the answer (0 when the node closed without one). */
function raw(port: number, request: Buffer): Promise<number> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    let head = '';
    socket.setTimeout(10_000, () => socket.destroy());
    socket.on('data', (chunk) => {
      head += chunk.toString('latin1');
      const m = /^HTTP\/1\.1 (\d{3})/.exec(head);
      if (m) {
        resolve(Number(m[1]));
        socket.destroy();
      }
    });
    socket.on('error', () => resolve(0));
    socket.on('close', () => resolve(0));
    socket.write(request);
  });
}

const pieces = ['88.118.1', '88.118.2', '88.118.1/P-1', '88.118.1/P-2', '88.118.1/%C3%BC%2F%C3%B6', '..', '%2e%2e', '%2F', '%00', '%C0%AE', '%ff', '%', 'p-1', '88.118', 'x'.repeat(300), '88.118.1/../2/P-1', '88.118.1/%2e%2e/P-1', '88.118.1/P-1%00', '%E2%80%AE', '\u00e9', '*', '?', '#', '//'];
const routes = ['/api/handles/', '/api/handles', '/api/resolve', '/api/handles/batch', '/api/admin/enterprises/', '/api/admin/keys/', '/api/admin/prefixes/', '/api/admin/applications/', '/api/enterprises/apply', '/api/enterprises/applications/', '/api/stats/overview', '/api/stats/report', '/api/audit', '/api/audit/verify', '/', '/healthz', '/dashboard/'];
const methods = ['GET', 'PUT', 'DELETE', 'POST', 'PATCH', 'HEAD', 'OPTIONS', 'G\u00e9T', 'TRACE'];
const validBody = { values: [{ index: 1, type: 'URL', data: { format: 'string', value: 'https://evil.example' } }] };

const pathArb = fc.tuple(fc.constantFrom(...routes), fc.array(fc.oneof(fc.constantFrom(...pieces), fc.string({ maxLength: 12 }).map(encodeURIComponent), fc.string({ unit: 'binary', maxLength: 6 })), { maxLength: 4 }), fc.option(fc.constantFrom('?type=URL', '?index=1&index=x', '?overwrite=false', '?prefix=88.118.1', '?prefix=88.118.1&pageSize=100000', '?auth=true', '?%zz', '?limit=-1', '?period=2026-Q9')))
  .map(([r, parts, q]) => `${r}${parts.join('/')}${q ?? ''}`);
const bodyArb = fc.oneof(
  fc.constant(undefined),
  fc.json({ maxDepth: 3 }),
  fc.constant(JSON.stringify(validBody)),
  fc.record({ values: fc.array(fc.record({ index: fc.anything(), type: fc.string({ maxLength: 5 }), data: fc.anything() }, { requiredKeys: [] }), { maxLength: 3 }) }).map((v) => JSON.stringify(v)),
  fc.constant(JSON.stringify({ handles: ['88.118.1/P-1', '\u0000', 'x'.repeat(2000)] })),
  fc.constant(JSON.stringify({ ...validBody, extra: true })),
  fc.constant('{"values":[{"index":1,'),
  fc.string({ unit: 'binary', maxLength: 200 }),
);
const authArb = fc.oneof(fc.constant(undefined), fc.constant(`Bearer ${'B'}`), fc.constant('Bearer snk_' + 'A'.repeat(43)), fc.constant('Basic Zm9vOmJhcg=='), fc.constant('Bearer\u0000x'), fc.constant('B-KEY'));
const typeArb = fc.constantFrom('application/json', 'application/json; charset=utf-8', 'text/plain', 'application/x-protobuf', 'multipart/form-data; boundary=x', '', 'application/json; charset=latin1');

const requestArb = fc.record({ method: fc.constantFrom(...methods), path: pathArb, body: bodyArb, auth: authArb, type: typeArb, xff: fc.option(fc.constantFrom('1.2.3.4', 'garbage', '::1, 10.0.0.1', '\u00ff')) });

describe('fuzz', () => {
  it('answers thousands of hostile requests without a 5xx, stays up, and changes nothing of A', async () => {
    const before = await snapshot();
    const tenancyBefore = await tenancySnapshot();
    const port = Number(new URL(node.url).port);
    const samples = fc.sample(requestArb, { numRuns: 3000, seed: 20261129 });
    const failures: string[] = [];
    const statuses = new Map<number, number>();
    const queue = [...samples];
    const worker = async () => {
      for (let r = queue.shift(); r; r = queue.shift()) {
        const body = r.body === undefined ? Buffer.alloc(0) : Buffer.from(r.body, 'utf8');
        const auth = r.auth === 'B-KEY' ? `Bearer ${b.key}` : r.auth;
        const lines = [
          `${r.method} ${r.path} HTTP/1.1`, 'Host: fuzz', 'Connection: close',
          ...(auth ? [`Authorization: ${auth}`] : []),
          ...(r.type ? [`Content-Type: ${r.type}`] : []),
          ...(r.xff ? [`X-Forwarded-For: ${r.xff}`] : []),
          `Content-Length: ${body.length}`,
        ];
        const status = await raw(port, Buffer.concat([Buffer.from(`${lines.join('\r\n')}\r\n\r\n`, 'latin1'), body]));
        statuses.set(status, (statuses.get(status) ?? 0) + 1);
        if (status >= 500) failures.push(`${status} ${r.method} ${JSON.stringify(r.path)} auth=${r.auth} type=${r.type} body=${JSON.stringify(r.body)?.slice(0, 120)}`);
      }
    };
    await Promise.all(Array.from({ length: 8 }, worker));
    expect(failures.slice(0, 10)).toEqual([]);
    // status 0 means the node dropped the connection without answering: allowed only for what
    // Node's HTTP parser refuses itself (it answers 400 and closes), never many.
    expect((await call(node.url, 'GET', '/healthz')).status).toBe(200);
    expect(await snapshot()).toEqual(before);
    expect(await tenancySnapshot()).toEqual(tenancyBefore);
    // B never saw A's private value, whatever it asked.
    const seen = await call(node.url, 'GET', '/api/handles/88.118.1/P-1', { key: b.key });
    expect(JSON.stringify(seen.body)).not.toContain('a-only');
    expect(statuses.size).toBeGreaterThan(3); // the requests really were varied
  }, 240_000);
});
